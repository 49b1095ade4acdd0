//! Where do model bytes live? Artifacts are objects behind the `object_store`
//! crate: a local directory by default (writes staged, fsynced, renamed),
//! S3-compatible storage or memory through the same type.
//!
//! Every path from a request goes through [`ArtifactPath::parse`], which
//! refuses anything that could leave the artifact root, and the local backend
//! refuses to follow symbolic links.

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
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<object_store::Error> for Error {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => Error::NotFound(path),
            other => Error::Storage(other.to_string()),
        }
    }
}

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

#[derive(Clone)]
pub struct ArtifactStore {
    store: Arc<dyn ObjectStore>,
    /// For the local backend: the root, to refuse symlinks below it.
    local_root: Option<PathBuf>,
}

impl ArtifactStore {
    /// A local directory (created if missing); writes are fsynced.
    pub fn local(root: impl AsRef<FsPath>) -> Result<Self> {
        let root = root.as_ref();
        std::fs::create_dir_all(root).map_err(|e| Error::Storage(format!("cannot create {}: {e}", root.display())))?;
        let root = root.canonicalize().map_err(|e| Error::Storage(e.to_string()))?;
        let fs = LocalFileSystem::new_with_prefix(&root)?.with_fsync(true).with_automatic_cleanup(true);
        Ok(ArtifactStore { store: Arc::new(fs), local_root: Some(root) })
    }

    /// In memory, for tests.
    pub fn memory() -> Self {
        ArtifactStore { store: Arc::new(InMemory::new()), local_root: None }
    }

    /// Any other `object_store` backend (S3, GCS, Azure...).
    pub fn from_object_store(store: Arc<dyn ObjectStore>) -> Self {
        ArtifactStore { store, local_root: None }
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
        let upload = self.store.put_multipart(&path.to_object_path()?).await?;
        let mut writer = WriteMultipart::new(upload);
        let mut total = 0u64;
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
        let prefix = if full.is_root() { None } else { Some(full.to_object_path()?) };
        let listing = self.store.list_with_delimiter(prefix.as_ref()).await?;
        let base_len = if base.is_root() { 0 } else { base.as_str().len() + 1 };
        let rel = |p: &Path| p.as_ref().get(base_len..).unwrap_or_default().to_string();
        let mut out: Vec<Entry> = listing
            .common_prefixes
            .iter()
            .map(|p| Entry { path: rel(p), is_dir: true, size: None })
            .chain(listing.objects.iter().map(|o| Entry { path: rel(&o.location), is_dir: false, size: Some(o.size) }))
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Deletes an object, or everything below a directory.
    pub async fn delete(&self, path: &ArtifactPath) -> Result<()> {
        self.check_writable(path)?;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, ok: bool) {
        assert_eq!(ArtifactPath::parse(raw).is_ok(), ok, "{raw:?}");
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
}
