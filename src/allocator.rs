//! The process's allocator: mimalloc for small blocks, the system's for large ones.
//!
//! Requests allocate and free many small values, often on different threads (the SQLite
//! driver's worker thread frees what a request built), where glibc's allocator spends a
//! quarter of the time of a page request: those go to mimalloc. Large buffers (a recording's
//! download and upload buffers, an export's page) go to the system allocator, which maps
//! them and gives them back when freed: mimalloc keeps freed large pages per thread, so
//! archiving a 200 MB recording grew RSS by 13–21 MiB (file store) and 24–32 MiB (S3) under
//! mimalloc alone, against a live heap peak of 3.7 MB (BENCHMARKS.md, Recordings).
//!
//! A block's size decides its allocator, and a block is always freed (or resized) with the
//! layout it was allocated with, so each block returns to the allocator that made it.
//!
//! The only module with unsafe code (the workspace denies it elsewhere): a global allocator
//! is an unsafe trait, and every method forwards its arguments unchanged.
#![allow(unsafe_code)]
use std::alloc::{GlobalAlloc, Layout, System};

use mimalloc::MiMalloc;

/// Blocks of this many bytes or more are the system allocator's.
pub const LARGE_BYTES: usize = 128 * 1024;

/// mimalloc below [`LARGE_BYTES`], the system allocator from there.
pub struct SizeSplit;

fn large(size: usize) -> bool {
    size >= LARGE_BYTES
}

// SAFETY: every call is forwarded to the allocator that owns the block: the one its layout's
// size picks, which is the same at allocation and at deallocation (GlobalAlloc's contract).
unsafe impl GlobalAlloc for SizeSplit {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        unsafe {
            if large(layout.size()) {
                System.alloc(layout)
            } else {
                MiMalloc.alloc(layout)
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout.
        unsafe {
            if large(layout.size()) {
                System.alloc_zeroed(layout)
            } else {
                MiMalloc.alloc_zeroed(layout)
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated with `layout`, so by the allocator this size picks.
        unsafe {
            if large(layout.size()) {
                System.dealloc(ptr, layout)
            } else {
                MiMalloc.dealloc(ptr, layout)
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated with `layout`; a block that stays on one side is resized
        // by its allocator, one that crosses is moved: allocated anew, copied, freed.
        unsafe {
            match (large(layout.size()), large(new_size)) {
                (true, true) => System.realloc(ptr, layout, new_size),
                (false, false) => MiMalloc.realloc(ptr, layout, new_size),
                _ => {
                    let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, moved, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_keep_their_contents_when_they_move_between_allocators() {
        let split = SizeSplit;
        for (from, to) in [(64, LARGE_BYTES * 2), (LARGE_BYTES * 2, 64), (100, 200)] {
            let layout = Layout::from_size_align(from, 16).expect("layout");
            // SAFETY: a fresh block of `layout`, written within its size, resized and freed
            // with the layouts it has.
            unsafe {
                let block = split.alloc(layout);
                assert!(!block.is_null());
                for i in 0..from {
                    *block.add(i) = (i % 251) as u8;
                }
                let moved = split.realloc(block, layout, to);
                assert!(!moved.is_null());
                for i in 0..from.min(to) {
                    assert_eq!(*moved.add(i), (i % 251) as u8, "byte {i} of {from} -> {to}");
                }
                assert_eq!(moved as usize % 16, 0, "alignment kept");
                split.dealloc(moved, Layout::from_size_align(to, 16).expect("layout"));
            }
        }
    }
}
