//! The object store holding archived recordings, each under its SHA-256
//! (`<prefix>/sha256/ab/abcdef…`), so the same bytes are stored once: a local directory
//! (`file:<dir>`) or any S3-compatible bucket (`s3://bucket/prefix`, the standard `AWS_*`
//! variables, `AWS_ENDPOINT_URL` for a store other than AWS).
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::error::AppError;

/// Parts of a multipart upload (S3's smallest is 5 MiB); one is in memory at a time.
const PART_BYTES: usize = 5 * 1024 * 1024;

/// A recording being downloaded, before it is stored ([`Objects::stage`]); removed when
/// dropped unless it was stored.
pub struct Staged {
    pub file: tokio::fs::File,
    path: tempfile::TempPath,
}

/// Where recordings are kept.
#[derive(Clone, Debug)]
pub struct Objects {
    /// Opened at first use for a directory, so a server or command that never stores or reads
    /// a recording leaves no empty directory behind.
    store: Arc<OnceLock<Arc<dyn ObjectStore>>>,
    /// The directory of a `file:` store.
    dir: Option<String>,
    prefix: Option<Path>,
    /// `file:<dir>` or `s3://bucket/prefix`, as configured (for messages).
    pub location: String,
}

/// Removes what a process killed mid-download left in `<dir>/.staging`: files not written to
/// for a day (a download in progress writes every few seconds; a fetch times out long before).
fn remove_stale_staging(dir: &str) {
    let Ok(entries) = std::fs::read_dir(std::path::Path::new(dir).join(".staging")) else {
        return;
    };
    let day = std::time::Duration::from_secs(24 * 3600);
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > day));
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// What re-reading an archived object found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    Intact,
    Missing,
    Mismatch { sha256: String, bytes: i64 },
}

impl Objects {
    /// Opens `location`: `file:<dir>` (created if missing) or `s3://bucket[/prefix]`.
    pub fn open(location: &str) -> Result<Objects, AppError> {
        let bad = |why: String| AppError::bad_input("recordings", why);
        if let Some(dir) = location.strip_prefix("file:") {
            let dir = if dir.is_empty() { "." } else { dir };
            return Ok(Objects {
                store: Arc::default(),
                dir: Some(dir.to_owned()),
                prefix: None,
                location: location.to_owned(),
            });
        }
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(bad(format!(
                    "`{location}` names no bucket: s3://bucket/prefix"
                )));
            }
            let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
            let endpoint = std::env::var("AWS_ENDPOINT_URL")
                .or_else(|_| std::env::var("AWS_ENDPOINT"))
                .ok();
            if let Some(endpoint) = endpoint {
                builder = builder
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_endpoint(endpoint)
                    .with_virtual_hosted_style_request(false);
            }
            let store = builder
                .build()
                .map_err(|e| bad(format!("cannot use {location}: {e}")))?;
            let prefix = prefix.trim_matches('/');
            let opened: Arc<dyn ObjectStore> = Arc::new(store);
            return Ok(Objects {
                store: Arc::new(OnceLock::from(opened)),
                dir: None,
                prefix: (!prefix.is_empty()).then(|| Path::from(prefix)),
                location: location.to_owned(),
            });
        }
        Err(bad(format!(
            "`{location}` is neither file:<dir> nor s3://bucket/prefix"
        )))
    }

    /// The object name of the bytes hashing to `sha256`.
    fn path(&self, sha256: &str) -> Path {
        let fan = sha256.get(..2).unwrap_or("00");
        let relative = format!("sha256/{fan}/{sha256}");
        match &self.prefix {
            Some(prefix) => Path::from(format!("{prefix}/{relative}")),
            None => Path::from(relative),
        }
    }

    /// Size of the object of `sha256`, `None` when there is none.
    /// The store, opened (a directory created) at first use.
    fn store(&self) -> Result<&Arc<dyn ObjectStore>, AppError> {
        if let Some(store) = self.store.get() {
            return Ok(store);
        }
        let bad = |why: String| AppError::bad_input("recordings", why);
        let dir = self.dir.as_deref().unwrap_or(".");
        std::fs::create_dir_all(dir)
            .map_err(|e| bad(format!("cannot create the directory {dir}: {e}")))?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| bad(format!("cannot use the directory {dir}: {e}")))?;
        remove_stale_staging(dir);
        let _ = self.store.set(Arc::new(store));
        self.store
            .get()
            .ok_or_else(|| AppError::Internal("the recordings store did not open".into()))
    }

    pub async fn size(&self, sha256: &str) -> Result<Option<u64>, AppError> {
        match self.store()?.head(&self.path(sha256)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// A new file to download a recording into before it is stored: inside a `file:` store's
    /// directory (`.staging/`), so storing it is a rename, not a copy; in the system's temp
    /// directory for S3, from where it is uploaded a part at a time.
    pub fn stage(&self) -> Result<Staged, AppError> {
        let named = match &self.dir {
            Some(dir) => {
                let staging = std::path::Path::new(dir).join(".staging");
                std::fs::create_dir_all(&staging)
                    .and_then(|()| tempfile::NamedTempFile::new_in(&staging))
            }
            None => tempfile::NamedTempFile::new(),
        }
        .map_err(|e| AppError::Unavailable(format!("no file to download into: {e}")))?;
        let (file, path) = named.into_parts();
        Ok(Staged {
            file: tokio::fs::File::from_std(file),
            path,
        })
    }

    /// Stores the staged file (`bytes` long, hashing to `sha256`) unless the same bytes are
    /// stored already: renamed into place in a `file:` store (after its bytes reach the disk),
    /// uploaded a part at a time to S3 with no part in flight while the next is read, so at
    /// most one part (5 MiB) is in memory.
    pub async fn put_staged(
        &self,
        sha256: &str,
        bytes: u64,
        mut staged: Staged,
    ) -> Result<(), AppError> {
        let failed = |e: std::io::Error| AppError::Internal(format!("the staged file: {e}"));
        staged.file.flush().await.map_err(failed)?;
        if self.size(sha256).await? == Some(bytes) {
            return Ok(());
        }
        if let Some(dir) = &self.dir {
            let target = std::path::Path::new(dir).join(self.path(sha256).as_ref());
            let Staged { file, path } = staged;
            let file = file.into_std().await;
            return tokio::task::spawn_blocking(move || {
                file.sync_all()?;
                let parent = target.parent().unwrap_or(std::path::Path::new("."));
                std::fs::create_dir_all(parent)?;
                path.persist(&target).map_err(|e| e.error)?;
                std::fs::File::open(parent)?.sync_all()
            })
            .await
            .map_err(|e| AppError::Internal(format!("storing the recording: {e}")))?
            .map_err(|e| AppError::Unavailable(format!("storing the recording: {e}")));
        }
        staged.file.rewind().await.map_err(failed)?;
        let upload = self
            .store()?
            .put_multipart(&self.path(sha256))
            .await
            .map_err(unavailable)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let n = match staged.file.read(&mut buffer).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(failed(e));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(0).await {
                return Err(unavailable(e));
            }
            writer.write(&buffer[..n]);
        }
        writer.finish().await.map_err(unavailable)?;
        Ok(())
    }

    /// The bytes of `sha256` in `range` (all when `None`), as a stream.
    pub async fn read(
        &self,
        sha256: &str,
        range: Option<Range<u64>>,
    ) -> Result<BoxStream<'static, Result<Bytes, std::io::Error>>, AppError> {
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        let result = self
            .store()?
            .get_opts(&self.path(sha256), options)
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => AppError::NotFound,
                other => unavailable(other),
            })?;
        Ok(result.into_stream().map_err(std::io::Error::other).boxed())
    }

    /// Re-reads the object of `sha256` and compares its hash and size.
    pub async fn check(&self, sha256: &str, bytes: i64) -> Result<Check, AppError> {
        let mut stream = match self.read(sha256, None).await {
            Ok(stream) => stream,
            Err(AppError::NotFound) => return Ok(Check::Missing),
            Err(e) => return Err(e),
        };
        let mut hasher = Sha256::new();
        let mut size: i64 = 0;
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| AppError::Unavailable(format!("reading {sha256}: {e}")))?;
            size += chunk.len() as i64;
            hasher.update(&chunk);
        }
        let found = hex::encode(hasher.finalize());
        if found == sha256 && size == bytes {
            Ok(Check::Intact)
        } else {
            Ok(Check::Mismatch {
                sha256: found,
                bytes: size,
            })
        }
    }
}

fn unavailable(e: object_store::Error) -> AppError {
    AppError::Unavailable(format!("the recordings store: {e}"))
}
