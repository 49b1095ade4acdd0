//! Where do model bytes live? Artifacts are objects behind the `object_store`
//! crate: a local directory by default (writes staged, fsynced, renamed),
//! S3-compatible storage or memory through the same type.
//!
//! Every path from a request goes through [`ArtifactPath::parse`], which
//! refuses anything that could leave the artifact root. The local backend
//! never follows a symbolic link: a path that crosses one is refused, and
//! listings and recursive deletes walk the directory tree themselves without
//! following links (a planted link is listed as nothing and deleted as a
//! link, never through it).

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    InvalidPath(String),
    #[error("artifact not found: {0}")]
    NotFound(String),
    #[error("artifact storage error: {0}")]
    Storage(String),
    #[error("upload failed: {0}")]
    Upload(String),
    /// A remote store (S3) cannot be reached now; retry shortly.
    #[error("artifact storage is unavailable; retry shortly ({0})")]
    Unavailable(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn kind(&self) -> plinth_core::ErrorKind {
        use plinth_core::ErrorKind as K;
        match self {
            Error::InvalidPath(_) | Error::Upload(_) => K::InvalidParameter,
            Error::NotFound(_) => K::NotFound,
            Error::Storage(_) => K::Internal,
            Error::Unavailable(_) => K::Overloaded,
        }
    }
}

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => Error::NotFound(path),
            // A remote store's request that failed after its retries (refused, timed out, 5xx): try again later.
            object_store::Error::Generic { store, source } if !matches!(store, "LocalFileSystem" | "InMemory") => {
                Error::Unavailable(format!("{store}: {source}"))
            }
            other => Error::Storage(other.to_string()),
        }
    }
}

/// The longest file or directory name most filesystems (and S3 keys' parts
/// as clients use them) accept.
pub const MAX_NAME_BYTES: usize = 255;

/// A relative artifact path, checked: no `..`, `.`, empty or absolute parts,
/// no backslashes or control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactPath(String);

impl ArtifactPath {
    /// The root itself (empty path).
    pub fn root() -> Self {
        ArtifactPath(String::new())
    }

    pub fn parse(raw: &str) -> Result<Self> {
        let bad = |why: &str| Err(Error::InvalidPath(format!("Invalid artifact path '{raw}': {why}")));
        if raw.starts_with('/') {
            return bad("absolute paths are not allowed");
        }
        if raw.contains('\\') || raw.chars().any(|c| c.is_control()) {
            return bad("backslashes and control characters are not allowed");
        }
        let trimmed = raw.trim_end_matches('/');
        if trimmed.is_empty() {
            return Ok(Self::root());
        }
        for seg in trimmed.split('/') {
            match seg {
                "" => return bad("empty path segments are not allowed"),
                "." | ".." => return bad("'.' and '..' are not allowed"),
                s if s.len() > MAX_NAME_BYTES => {
                    return bad(&format!("a file or directory name is longer than {MAX_NAME_BYTES} bytes"));
                }
                s if local::is_staged(s) => return bad("names ending in '#' and digits are reserved for uploads"),
                _ => {}
            }
        }
        if trimmed.len() > 4096 {
            return bad("path too long");
        }
        Ok(ArtifactPath(trimmed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn join(&self, rest: &ArtifactPath) -> ArtifactPath {
        match (self.is_root(), rest.is_root()) {
            (true, _) => rest.clone(),
            (_, true) => self.clone(),
            _ => ArtifactPath(format!("{}/{}", self.0, rest.0)),
        }
    }

    fn to_object_path(&self) -> Result<Path> {
        Path::parse(&self.0).map_err(|e| Error::InvalidPath(format!("Invalid artifact path '{}': {e}", self.0)))
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the listed directory's root (as MLflow reports it).
    pub path: String,
    pub is_dir: bool,
    pub size: Option<u64>,
}

/// The AWS settings from the environment, with bounds on waiting: a store
/// that is down fails a request in seconds (5 s to connect, 3 retries within
/// 15 s), not after object_store's default of minutes.
fn s3_builder() -> object_store::aws::AmazonS3Builder {
    let allow_http = std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    let client = object_store::ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(std::time::Duration::from_secs(5))
        .with_timeout(std::time::Duration::from_secs(300));
    let retry = object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(15),
        ..Default::default()
    };
    object_store::aws::AmazonS3Builder::from_env().with_client_options(client).with_retry(retry)
}

/// Uploads up to this size are written with one request; larger ones stream as multipart.
const SINGLE_PUT_BYTES: usize = 8 << 20;

#[derive(Clone)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    /// For the local backend: the root, to refuse symlinks below it.
    local_root: Option<PathBuf>,
    /// Where a client can reach these bytes without the server
    /// (`file:///root`, `s3://bucket/prefix`); none for stores only this process sees.
    direct_uri: Option<String>,
}

impl ArtifactStore {
    /// A local directory (created if missing); writes are fsynced.
    pub fn local(root: impl AsRef<FsPath>) -> Result<Self> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(|e| Error::Storage(format!("cannot create {}: {e}", root.display())))?;
        let root = root.canonicalize().map_err(|e| Error::Storage(e.to_string()))?;
        let fs = LocalFileSystem::new_with_prefix(&root)?.with_fsync(true).with_automatic_cleanup(true);
        let direct_uri = Some(format!("file://{}", root.display()));
        Ok(ArtifactStore { store: Arc::new(fs), local_root: Some(root), direct_uri })
    }

    /// In memory, for tests.
    pub fn memory() -> Self {
        ArtifactStore { store: Arc::new(InMemory::new()), local_root: None, direct_uri: None }
    }

    /// Any other `object_store` backend (S3, GCS, Azure...).
    pub fn from_object_store(store: Arc<dyn ObjectStore>) -> Self {
        ArtifactStore { store, local_root: None, direct_uri: None }
    }

    /// An S3-compatible bucket, `s3://bucket[/prefix]`, with the standard AWS
    /// settings from the environment: `AWS_ENDPOINT_URL` (any S3-compatible
    /// server; addressed path-style unless `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`
    /// is true), `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_ALLOW_HTTP=true` for a plain-HTTP endpoint. The bucket is listed
    /// once here, so a wrong bucket, endpoint or key fails at start, not at
    /// the first upload.
    pub async fn s3(url: &str) -> Result<Self> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            Error::Storage(format!("invalid artifact location '{url}': expected s3://bucket[/prefix]"))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Storage(format!("invalid artifact location '{url}': no bucket")));
        }
        let s3 = s3_builder()
            .with_bucket_name(bucket)
            .build()
            .map_err(|e| Error::Storage(format!("cannot configure S3 for {url}: {e}")))?;
        let prefix = prefix.trim_matches('/');
        let (store, direct_uri): (Arc<dyn ObjectStore>, String) = match prefix {
            "" => (Arc::new(s3), format!("s3://{bucket}")),
            prefix => (Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)), format!("s3://{bucket}/{prefix}")),
        };
        store.list_with_delimiter(None).await.map_err(|e| {
            Error::Storage(format!("cannot use the bucket {url} (check the bucket, endpoint and keys): {e}"))
        })?;
        Ok(ArtifactStore { store, local_root: None, direct_uri: Some(direct_uri) })
    }

    /// Where clients can read and write these artifacts themselves, bypassing
    /// the server (`file:///root` or `s3://bucket/prefix`), if anywhere.
    pub fn direct_uri(&self) -> Option<&str> {
        self.direct_uri.as_deref()
    }

    /// The key under the root for `uri`, when `uri` lies below
    /// [`ArtifactStore::direct_uri`] (`s3://bucket/prefix/1/run/artifacts` → `1/run/artifacts`).
    pub fn key_of_direct<'a>(&self, uri: &'a str) -> Option<&'a str> {
        let root = self.direct_uri.as_deref()?;
        match uri.strip_prefix(root)? {
            "" => Some(""),
            rest => rest.strip_prefix('/').map(|k| k.trim_matches('/')),
        }
    }

    /// Refuses paths that cross a symbolic link on the local backend.
    fn check_links(&self, path: &ArtifactPath) -> Result<()> {
        let Some(root) = &self.local_root else { return Ok(()) };
        let mut cur = root.clone();
        for seg in path.as_str().split('/').filter(|s| !s.is_empty()) {
            cur.push(seg);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(Error::InvalidPath(format!(
                        "Invalid artifact path '{}': symbolic links are not followed",
                        path.as_str()
                    )));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// Writes a whole object atomically.
    pub async fn put(&self, path: &ArtifactPath, data: Bytes) -> Result<()> {
        self.check_writable(path)?;
        self.store.put(&path.to_object_path()?, data.into()).await?;
        Ok(())
    }

    fn check_writable(&self, path: &ArtifactPath) -> Result<()> {
        if path.is_root() {
            return Err(Error::InvalidPath("An artifact path must name a file".into()));
        }
        self.check_links(path)
    }

    /// Streams an upload into place; the object appears only when complete,
    /// and a failed stream leaves nothing behind.
    pub async fn put_stream<S, E>(&self, path: &ArtifactPath, mut body: S) -> Result<u64>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        self.check_writable(path)?;
        let location = path.to_object_path()?;
        // Small objects (most artifacts, and empty ones, which an S3 multipart
        // upload cannot hold) go up in one request; larger ones stream.
        let mut head = Vec::new();
        let mut next = None;
        while let Some(chunk) = body.next().await {
            let bytes = chunk.map_err(|e| Error::Upload(e.to_string()))?;
            if head.len() + bytes.len() > SINGLE_PUT_BYTES {
                next = Some(bytes);
                break;
            }
            head.extend_from_slice(&bytes);
        }
        let Some(next) = next else {
            let total = head.len() as u64;
            self.store.put(&location, Bytes::from(head).into()).await?;
            return Ok(total);
        };
        let upload = self.store.put_multipart(&location).await?;
        let mut writer = WriteMultipart::new(upload);
        writer.write(&head);
        writer.write(&next);
        let mut total = (head.len() + next.len()) as u64;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(bytes) => {
                    total += bytes.len() as u64;
                    writer.write(&bytes);
                }
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(Error::Upload(e.to_string()));
                }
            }
        }
        writer.finish().await?;
        Ok(total)
    }

    /// Opens an object for streaming; returns its size and its bytes.
    pub async fn get(
        &self,
        path: &ArtifactPath,
    ) -> Result<(u64, impl Stream<Item = Result<Bytes>> + Send + 'static + use<>)> {
        if path.is_root() {
            return Err(Error::NotFound(String::new()));
        }
        self.check_links(path)?;
        let result = self.store.get(&path.to_object_path()?).await?;
        let size = result.meta.size;
        Ok((size, result.into_stream().map_err(Error::from)))
    }

    /// Reads a whole object.
    pub async fn read(&self, path: &ArtifactPath) -> Result<Bytes> {
        self.check_links(path)?;
        Ok(self.store.get(&path.to_object_path()?).await?.bytes().await?)
    }

    /// Lists the direct children of `dir`, paths relative to `base`.
    pub async fn list(&self, base: &ArtifactPath, dir: &ArtifactPath) -> Result<Vec<Entry>> {
        let full = base.join(dir);
        self.check_links(&full)?;
        let base_len = if base.is_root() { 0 } else { base.as_str().len() + 1 };
        let rel = |p: &str| p.get(base_len..).unwrap_or_default().to_string();
        let mut out: Vec<Entry> = match &self.local_root {
            Some(root) => {
                let children = blocking(local::children(root.clone(), full.clone())).await?;
                children.into_iter().map(|c| Entry { path: rel(&c.path), is_dir: c.is_dir, size: c.size }).collect()
            }
            None => {
                let prefix = if full.is_root() { None } else { Some(full.to_object_path()?) };
                let listing = self.store.list_with_delimiter(prefix.as_ref()).await?;
                listing
                    .common_prefixes
                    .iter()
                    .map(|p| Entry { path: rel(p.as_ref()), is_dir: true, size: None })
                    .chain(listing.objects.iter().map(|o| Entry {
                        path: rel(o.location.as_ref()),
                        is_dir: false,
                        size: Some(o.size),
                    }))
                    .collect()
            }
        };
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Deletes an object, or everything below a directory. On the local
    /// backend a symbolic link below `path` is removed as a link; what it
    /// points to is never touched.
    pub async fn delete(&self, path: &ArtifactPath) -> Result<()> {
        self.check_writable(path)?;
        if let Some(root) = &self.local_root {
            return blocking(local::delete(root.clone(), path.clone())).await;
        }
        let p = path.to_object_path()?;
        let children: Vec<Path> = self.store.list(Some(&p)).map_ok(|m| m.location).try_collect().await?;
        if children.is_empty() {
            self.store.delete(&p).await?;
        }
        for child in children {
            self.store.delete(&child).await?;
        }
        Ok(())
    }

    /// Removes what uploads interrupted by a crash left behind on the local
    /// backend: staged files (`name#<digits>`) untouched for `older_than`.
    /// Returns how many were removed. A live upload keeps writing its staged
    /// file, so it is never taken.
    pub async fn remove_stale_uploads(&self, older_than: std::time::Duration) -> Result<usize> {
        match &self.local_root {
            Some(root) => blocking(local::remove_stale_uploads(root.clone(), older_than)).await,
            None => Ok(0),
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Error::Storage(format!("artifact task failed: {e}")))?
}

/// The local backend's own directory walks: none of them follows a link.
mod local {
    use std::path::{Path, PathBuf};

    use super::{ArtifactPath, Error, Result};

    pub struct Child {
        pub path: String,
        pub is_dir: bool,
        pub size: Option<u64>,
    }

    fn io_error(path: &Path, e: std::io::Error) -> Error {
        match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound(path.display().to_string()),
            _ => Error::Storage(format!("{}: {e}", path.display())),
        }
    }

    /// A staged upload: `name#<digits>`, as `object_store`'s local backend
    /// names them.
    pub fn is_staged(name: &str) -> bool {
        matches!(name.rsplit_once('#'), Some((_, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }

    /// Direct children of `dir`; links and staged uploads are left out. A
    /// directory that does not exist lists as empty (as object stores do).
    pub fn children(root: PathBuf, dir: ArtifactPath) -> impl FnOnce() -> Result<Vec<Child>> {
        move || {
            let fs_dir = if dir.is_root() { root } else { root.join(dir.as_str()) };
            let entries = match std::fs::read_dir(&fs_dir) {
                Ok(e) => e,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
                    return Ok(Vec::new());
                }
                Err(e) => return Err(io_error(&fs_dir, e)),
            };
            let mut out = Vec::new();
            for entry in entries {
                let entry = entry.map_err(|e| io_error(&fs_dir, e))?;
                // `file_type` and `symlink_metadata` describe the entry itself, never a link's target.
                let meta = std::fs::symlink_metadata(entry.path()).map_err(|e| io_error(&entry.path(), e))?;
                let Some(name) = entry.file_name().to_str().map(str::to_string) else { continue };
                if meta.file_type().is_symlink() || is_staged(&name) {
                    continue;
                }
                let path = if dir.is_root() { name } else { format!("{}/{name}", dir.as_str()) };
                if meta.is_dir() {
                    out.push(Child { path, is_dir: true, size: None });
                } else if meta.is_file() {
                    out.push(Child { path, is_dir: false, size: Some(meta.len()) });
                }
            }
            Ok(out)
        }
    }

    /// Removes a file, or a directory's whole tree (links removed as links).
    pub fn delete(root: PathBuf, path: ArtifactPath) -> impl FnOnce() -> Result<()> {
        move || {
            let target = root.join(path.as_str());
            let meta = std::fs::symlink_metadata(&target).map_err(|e| io_error(&target, e))?;
            if !meta.is_dir() {
                std::fs::remove_file(&target).map_err(|e| io_error(&target, e))?;
            } else {
                // Children before their directory; `follow_links(false)` is walkdir's default, stated here.
                for entry in walkdir::WalkDir::new(&target).follow_links(false).contents_first(true) {
                    let entry = entry.map_err(|e| Error::Storage(e.to_string()))?;
                    let p = entry.path();
                    let result =
                        if entry.file_type().is_dir() { std::fs::remove_dir(p) } else { std::fs::remove_file(p) };
                    result.map_err(|e| io_error(p, e))?;
                }
            }
            remove_empty_parents(&root, &target);
            Ok(())
        }
    }

    /// Directories left empty up to (not including) the root go too, as
    /// `object_store` does after a delete.
    fn remove_empty_parents(root: &Path, from: &Path) {
        let mut cur = from.parent();
        while let Some(dir) = cur {
            if dir == root || !dir.starts_with(root) || std::fs::remove_dir(dir).is_err() {
                break;
            }
            cur = dir.parent();
        }
    }

    pub fn remove_stale_uploads(root: PathBuf, older_than: std::time::Duration) -> impl FnOnce() -> Result<usize> {
        move || {
            let mut removed = 0;
            for entry in walkdir::WalkDir::new(&root).follow_links(false).into_iter().filter_map(|e| e.ok()) {
                if !entry.file_type().is_file() || !entry.file_name().to_str().is_some_and(is_staged) {
                    continue;
                }
                let stale = entry
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age >= older_than);
                if stale && std::fs::remove_file(entry.path()).is_ok() {
                    tracing::info!(path = %entry.path().display(), "removed an interrupted upload's staged file");
                    removed += 1;
                }
            }
            Ok(removed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, ok: bool) {
        assert_eq!(ArtifactPath::parse(raw).is_ok(), ok, "{raw:?}");
    }

    #[test]
    fn direct_uris_map_to_keys_below_the_root_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ArtifactStore::local(dir.path()).expect("local");
        let root = store.direct_uri().expect("a local store has one").to_string();
        assert!(root.starts_with("file:///"), "{root}");
        assert_eq!(store.key_of_direct(&format!("{root}/1/run/artifacts/")), Some("1/run/artifacts"));
        assert_eq!(store.key_of_direct(&root), Some(""));
        assert_eq!(store.key_of_direct(&format!("{root}2/x")), None, "a sibling directory is not below the root");
        assert_eq!(store.key_of_direct("s3://other/1"), None);
        // A key with `..` still goes through ArtifactPath, which refuses it.
        let escaping = format!("{root}/../etc");
        let key = store.key_of_direct(&escaping).expect("lexically below");
        assert!(ArtifactPath::parse(key).is_err());
        assert_eq!(ArtifactStore::memory().direct_uri(), None);
    }

    #[test]
    fn paths_cannot_escape() {
        check("a/b/c.txt", true);
        check("a/b/", true);
        check("", true);
        check("../etc/passwd", false);
        check("a/../../b", false);
        check("/etc/passwd", false);
        check("a//b", false);
        check("a/./b", false);
        check("a\\..\\b", false);
        check("a\0b", false);
    }

    async fn roundtrip(store: &ArtifactStore) {
        let p = ArtifactPath::parse("run/artifacts/dir/x.txt").unwrap();
        store.put(&p, Bytes::from_static(b"hello")).await.unwrap();
        assert_eq!(store.read(&p).await.unwrap(), Bytes::from_static(b"hello"));
        let base = ArtifactPath::parse("run/artifacts").unwrap();
        let listing = store.list(&base, &ArtifactPath::root()).await.unwrap();
        assert_eq!(listing, vec![Entry { path: "dir".into(), is_dir: true, size: None }]);
        let listing = store.list(&base, &ArtifactPath::parse("dir").unwrap()).await.unwrap();
        assert_eq!(listing, vec![Entry { path: "dir/x.txt".into(), is_dir: false, size: Some(5) }]);
        store.delete(&ArtifactPath::parse("run/artifacts/dir").unwrap()).await.unwrap();
        assert!(matches!(store.read(&p).await, Err(Error::NotFound(_))));
    }

    #[tokio::test]
    async fn local_and_memory_behave_alike() {
        let dir = tempfile::tempdir().unwrap();
        roundtrip(&ArtifactStore::local(dir.path()).unwrap()).await;
        roundtrip(&ArtifactStore::memory()).await;
    }

    /// Against a real S3-compatible server when the test command started one
    /// (`PLINTH_TEST_S3` and the AWS settings, see scripts/garage.sh): the
    /// same behaviour, multipart streaming, nothing visible after a failed
    /// upload, and a wrong bucket refused at once.
    #[tokio::test]
    async fn s3_behaves_alike() {
        let Ok(bucket) = std::env::var("PLINTH_TEST_S3") else {
            eprintln!("PLINTH_TEST_S3 is not set: S3 is tested in scripts/test.sh's second pass");
            return;
        };
        let prefix = format!("{bucket}/unit-{}", std::process::id());
        let store = ArtifactStore::s3(&prefix).await.unwrap();
        roundtrip(&store).await;
        let p = ArtifactPath::parse("big.bin").unwrap();
        let chunks: Vec<Result<Bytes, std::io::Error>> = (0..3).map(|_| Ok(Bytes::from(vec![7u8; 6 << 20]))).collect();
        assert_eq!(store.put_stream(&p, futures::stream::iter(chunks)).await.unwrap(), 18 << 20);
        assert_eq!(store.read(&p).await.unwrap().len(), 18 << 20);
        let q = ArtifactPath::parse("broken.bin").unwrap();
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            vec![Ok(Bytes::from(vec![1u8; 6 << 20])), Err(std::io::Error::other("client went away"))];
        assert!(store.put_stream(&q, futures::stream::iter(chunks)).await.is_err());
        assert!(matches!(store.read(&q).await, Err(Error::NotFound(_))));
        store.delete(&p).await.unwrap();
        let empty = ArtifactPath::parse("empty.txt").unwrap();
        let none: Vec<Result<Bytes, std::io::Error>> = vec![];
        assert_eq!(store.put_stream(&empty, futures::stream::iter(none)).await.unwrap(), 0);
        assert!(store.read(&empty).await.unwrap().is_empty());
        let wrong = ArtifactStore::s3("s3://no-such-bucket-here/x").await.err().map(|e| e.to_string());
        assert!(wrong.is_some_and(|e| e.contains("cannot use the bucket")));
    }

    /// A remote store that is down: a failed call is `Unavailable` (the
    /// server answers 503 + Retry-After), quickly.
    #[tokio::test]
    async fn an_unreachable_bucket_is_unavailable_not_internal() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let s3 = s3_builder()
            .with_bucket_name("gone")
            .with_endpoint(format!("http://127.0.0.1:{port}"))
            .with_region("garage")
            .with_access_key_id("k")
            .with_secret_access_key("s")
            .with_client_options(object_store::ClientOptions::new().with_allow_http(true))
            .with_retry(object_store::RetryConfig { max_retries: 1, ..Default::default() })
            .build()
            .unwrap();
        let store = ArtifactStore::from_object_store(Arc::new(s3));
        let started = std::time::Instant::now();
        let err = store.read(&ArtifactPath::parse("a.txt").unwrap()).await.unwrap_err();
        assert_eq!(err.kind(), plinth_core::ErrorKind::Overloaded, "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[tokio::test]
    async fn streams_uploads() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(dir.path()).unwrap();
        let p = ArtifactPath::parse("big.bin").unwrap();
        let chunks: Vec<Result<Bytes, std::io::Error>> = (0..20).map(|_| Ok(Bytes::from(vec![7u8; 1 << 20]))).collect();
        let n = store.put_stream(&p, futures::stream::iter(chunks)).await.unwrap();
        assert_eq!(n, 20 << 20);
        assert_eq!(store.read(&p).await.unwrap().len(), 20 << 20);
        // A failing stream leaves nothing visible.
        let q = ArtifactPath::parse("broken.bin").unwrap();
        let chunks: Vec<Result<Bytes, std::io::Error>> =
            vec![Ok(Bytes::from_static(b"partial")), Err(std::io::Error::other("client went away"))];
        assert!(store.put_stream(&q, futures::stream::iter(chunks)).await.is_err());
        assert!(matches!(store.read(&q).await, Err(Error::NotFound(_))));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn refuses_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        let store = ArtifactStore::local(dir.path()).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let p = ArtifactPath::parse("link/secret").unwrap();
        assert!(matches!(store.read(&p).await, Err(Error::InvalidPath(_))));
        assert!(matches!(store.put(&p, Bytes::from_static(b"x")).await, Err(Error::InvalidPath(_))));
    }

    /// A link planted inside the root: listings show nothing of it (nor a
    /// linked file's size), a recursive delete removes the link and leaves
    /// everything it points to in place.
    #[cfg(unix)]
    #[tokio::test]
    async fn never_follows_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(outside.path().join("sub")).unwrap();
        std::fs::write(outside.path().join("sub/precious"), b"keep me").unwrap();
        std::fs::write(outside.path().join("big"), vec![1u8; 4096]).unwrap();
        let store = ArtifactStore::local(dir.path()).unwrap();
        let run = ArtifactPath::parse("1/run/artifacts").unwrap();
        store.put(&run.join(&ArtifactPath::parse("ok.txt").unwrap()), Bytes::from_static(b"ok")).await.unwrap();
        let arts = dir.path().join("1/run/artifacts");
        std::os::unix::fs::symlink(outside.path(), arts.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("big"), arts.join("file-link")).unwrap();

        let listing = store.list(&run, &ArtifactPath::root()).await.unwrap();
        assert_eq!(listing, vec![Entry { path: "ok.txt".into(), is_dir: false, size: Some(2) }]);
        store.delete(&run).await.unwrap();
        assert!(!arts.exists(), "the run's directory is gone");
        assert_eq!(std::fs::read(outside.path().join("sub/precious")).unwrap(), b"keep me");
        assert_eq!(std::fs::read(outside.path().join("big")).unwrap().len(), 4096);
    }

    #[test]
    fn long_names_are_refused() {
        check(&"a".repeat(255), true);
        check(&format!("dir/{}", "a".repeat(256)), false);
    }

    #[tokio::test]
    async fn removes_stale_staged_uploads_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(dir.path()).unwrap();
        std::fs::create_dir_all(dir.path().join("1/r")).unwrap();
        std::fs::write(dir.path().join("1/r/model.bin#3"), b"partial").unwrap();
        std::fs::write(dir.path().join("1/r/name#tag"), b"a real file").unwrap();
        assert_eq!(store.remove_stale_uploads(std::time::Duration::from_secs(3600)).await.unwrap(), 0);
        assert_eq!(store.remove_stale_uploads(std::time::Duration::ZERO).await.unwrap(), 1);
        assert!(!dir.path().join("1/r/model.bin#3").exists());
        assert!(dir.path().join("1/r/name#tag").exists());
    }
}
