//! The zip of a bundle, written on a blocking thread as its pieces arrive through a bounded
//! channel: each file deflated, or stored as it is when it is compressed already (recordings),
//! hashed on its way in, and, once every other file is written, `manifest.json` and
//! `SHA256SUMS`. The archive is
//! written front to back without seeking (sizes and CRCs follow each file), so it can go
//! straight into an HTTP body.
use std::io::{self, Write};

use bytes::Bytes;
use chrono::{DateTime, Datelike, Timelike, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::manifest::{FileEntry, MANIFEST, Manifest, SUMS, sums};

/// What the assembler sends the zip writer.
#[derive(Debug)]
pub enum Piece {
    /// The next file; `large` when it may pass 4 GiB (ZIP64 sizes); `stored` when deflating
    /// would not make it smaller (a recording).
    File {
        path: String,
        large: bool,
        stored: bool,
    },
    /// More of the current file.
    Bytes(Bytes),
    /// Every file was sent: write the manifest (its `files` filled in here) and close.
    End(Box<Manifest>),
}

/// What was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packed {
    /// Files in the zip, the manifest and `SHA256SUMS` included.
    pub files: usize,
    /// Bytes of the zip.
    pub bytes: u64,
}

/// Counts what passes through.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The file being written.
struct Open {
    path: String,
    hasher: Sha256,
    bytes: u64,
}

impl Open {
    fn close(self) -> FileEntry {
        FileEntry {
            path: self.path,
            bytes: self.bytes,
            sha256: hex::encode(self.hasher.finalize()),
        }
    }
}

fn zip_error(e: zip::result::ZipError) -> io::Error {
    match e {
        zip::result::ZipError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

/// The zip's timestamp of every entry: when the bundle was made, in UTC (DOS times have no
/// zone).
fn dos_time(at: DateTime<Utc>) -> zip::DateTime {
    let field = |v: u32| u8::try_from(v).unwrap_or(0);
    zip::DateTime::from_date_and_time(
        u16::try_from(at.year()).unwrap_or(1980),
        field(at.month()),
        field(at.day()),
        field(at.hour()),
        field(at.minute()),
        field(at.second()),
    )
    .unwrap_or_default()
}

/// Writes the zip of the pieces `pieces` brings into `out`, until [`Piece::End`]; returns `out`
/// and what was written. The channel closing before `End` (the assembler failed or stopped)
/// is an error: the zip is left without its central directory, so it never reads as whole.
pub fn pack<W: Write>(
    out: W,
    pieces: &mut mpsc::Receiver<Piece>,
    made_at: DateTime<Utc>,
) -> io::Result<(W, Packed)> {
    let mut zip = ZipWriter::new_stream(Counting {
        inner: out,
        bytes: 0,
    });
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(dos_time(made_at))
        .unix_permissions(0o644);
    let stored_options = options.compression_method(CompressionMethod::Stored);
    let mut files: Vec<FileEntry> = Vec::new();
    let mut open: Option<Open> = None;
    while let Some(piece) = pieces.blocking_recv() {
        match piece {
            Piece::File {
                path,
                large,
                stored,
            } => {
                if let Some(done) = open.take() {
                    files.push(done.close());
                }
                let options = if stored { stored_options } else { options };
                zip.start_file(path.as_str(), options.large_file(large))
                    .map_err(zip_error)?;
                open = Some(Open {
                    path,
                    hasher: Sha256::new(),
                    bytes: 0,
                });
            }
            Piece::Bytes(bytes) => {
                let Some(file) = open.as_mut() else {
                    return Err(io::Error::other("bytes sent before any file"));
                };
                zip.write_all(&bytes)?;
                file.hasher.update(&bytes);
                file.bytes += bytes.len() as u64;
            }
            Piece::End(mut manifest) => {
                if let Some(done) = open.take() {
                    files.push(done.close());
                }
                manifest.files = files;
                let text = serde_json::to_vec_pretty(&*manifest).map_err(io::Error::other)?;
                zip.start_file(MANIFEST, options).map_err(zip_error)?;
                zip.write_all(&text)?;
                zip.write_all(b"\n")?;
                let mut hasher = Sha256::new();
                hasher.update(&text);
                hasher.update(b"\n");
                let listed = sums(&manifest.files, &hex::encode(hasher.finalize()));
                zip.start_file(SUMS, options).map_err(zip_error)?;
                zip.write_all(listed.as_bytes())?;
                let count = manifest.files.len() + 2;
                let mut counting = zip.finish().map_err(zip_error)?.into_inner();
                counting.flush()?;
                return Ok((
                    counting.inner,
                    Packed {
                        files: count,
                        bytes: counting.bytes,
                    },
                ));
            }
        }
    }
    Err(io::Error::other(
        "the bundle stopped before its end: no manifest was written",
    ))
}

/// An HTTP body's writer: bytes gathered into chunks of [`CHUNK`] and sent through a bounded
/// channel, waiting while the client is slower than the bundle.
pub struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

/// Bytes per body chunk.
pub const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    pub fn new(tx: mpsc::Sender<io::Result<Bytes>>) -> ChannelWriter {
        ChannelWriter {
            tx,
            buffer: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn manifest() -> Manifest {
        Manifest {
            format: super::super::manifest::FORMAT.into(),
            calltrail_version: "0".into(),
            made_at: "2026-12-02T10:00:00Z".into(),
            made_by: super::super::manifest::MadeBy {
                via: "cli".into(),
                key_id: None,
                key_name: None,
                role: None,
                waba_numbers: Vec::new(),
                agents: Vec::new(),
                access_log_id: None,
            },
            filter: serde_json::Map::new(),
            calls: 0,
            chain_heads: Vec::new(),
            files: Vec::new(),
        }
    }

    #[test]
    fn a_packed_zip_reads_back_with_its_manifest_and_sums() {
        let (tx, mut rx) = mpsc::channel(8);
        let sender = std::thread::spawn(move || {
            for piece in [
                Piece::File {
                    path: "a.txt".into(),
                    large: false,
                    stored: false,
                },
                Piece::Bytes(Bytes::from_static(b"hello ")),
                Piece::Bytes(Bytes::from_static(b"world")),
                Piece::File {
                    path: "b/c.bin".into(),
                    large: true,
                    stored: true,
                },
                Piece::Bytes(Bytes::from(vec![7u8; 100_000])),
                Piece::End(Box::new(manifest())),
            ] {
                tx.blocking_send(piece).expect("send");
            }
        });
        let (out, packed) = pack(Vec::new(), &mut rx, Utc::now()).expect("packs");
        sender.join().expect("sender");
        assert_eq!(packed.files, 4);
        assert_eq!(packed.bytes, out.len() as u64);
        let mut archive = zip::ZipArchive::new(io::Cursor::new(out)).expect("a zip");
        let mut text = String::new();
        archive
            .by_name("a.txt")
            .expect("a.txt")
            .read_to_string(&mut text)
            .expect("read");
        assert_eq!(text, "hello world");
        let mut listed = String::new();
        archive
            .by_name(SUMS)
            .expect("sums")
            .read_to_string(&mut listed)
            .expect("read");
        let lines: Vec<&str> = listed.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            format!("{}  a.txt", hex::encode(Sha256::digest(b"hello world")))
        );
        assert!(lines[2].ends_with("  manifest.json"));
    }

    #[test]
    fn a_channel_closed_before_the_end_is_an_error() {
        let (tx, mut rx) = mpsc::channel(2);
        tx.try_send(Piece::File {
            path: "a".into(),
            large: false,
            stored: false,
        })
        .expect("send");
        drop(tx);
        assert!(pack(Vec::new(), &mut rx, Utc::now()).is_err());
    }
}
