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
use tokio::io::AsyncReadExt;

use crate::error::AppError;

/// Parts of a multipart upload (S3's smallest is 5 MiB); one is buffered at a time.
const PART_BYTES: usize = 5 * 1024 * 1024;

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

    /// Stores `file` (`bytes` long, hashing to `sha256`) unless the same bytes are stored
    /// already; reads it a part at a time.
    pub async fn put_file(
        &self,
        sha256: &str,
        bytes: u64,
        file: &mut tokio::fs::File,
    ) -> Result<(), AppError> {
        if self.size(sha256).await? == Some(bytes) {
            return Ok(());
        }
        let upload = self
            .store()?
            .put_multipart(&self.path(sha256))
            .await
            .map_err(unavailable)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let n = match file.read(&mut buffer).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(AppError::Internal(format!("reading the temp file: {e}")));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(1).await {
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
