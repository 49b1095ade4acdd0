//! Artifacts behind the `mlflow-artifacts` proxy and run artifact listings.

use bytes::Bytes;
use futures::Stream;
use plinth_artifacts::{ArtifactPath, Entry};

use plinth_core::access::Op;

use crate::{ARTIFACT_SCHEME, Platform, Result};

/// The store key under which an `mlflow-artifacts:/...` URI lives, or `None`
/// for URIs this server does not hold (a client-chosen location).
pub fn artifact_key(uri: &str) -> Option<&str> {
    let rest = uri.strip_prefix(ARTIFACT_SCHEME).or_else(|| uri.strip_prefix("mlflow-artifacts:"))?;
    // mlflow-artifacts://host:port/path carries an authority; skip it.
    let rest = match rest.strip_prefix('/') {
        Some(with_host) => with_host.split_once('/').map_or("", |(_, p)| p),
        None => rest,
    };
    Some(rest.trim_matches('/'))
}

impl Platform {
    /// The proxy's paths are `<experiment>/<run>/artifacts/…` (and
    /// `<experiment>/models/<id>/…`): the experiment decides. A path without
    /// one (the root) is for those nothing restricts.
    async fn need_artifact_path(&self, path: &ArtifactPath, op: Op) -> Result<()> {
        let first = path.as_str().split('/').next().unwrap_or("");
        if !first.is_empty() && first.bytes().all(|b| b.is_ascii_digit()) {
            return self.need_experiment(first, op).await;
        }
        if self.access().await?.is_unrestricted() {
            return Ok(());
        }
        Err(plinth_core::Error::denied().into())
    }

    pub async fn upload_artifact<S, E>(&self, path: &str, body: S) -> Result<u64>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = ArtifactPath::parse(path)?;
        self.need_artifact_path(&path, Op::Update).await?;
        Ok(self.artifacts.put_stream(&path, body).await?)
    }

    pub async fn download_artifact(
        &self,
        path: &str,
    ) -> Result<(u64, impl Stream<Item = plinth_artifacts::Result<Bytes>> + Send + 'static + use<>)> {
        let path = ArtifactPath::parse(path)?;
        self.need_artifact_path(&path, Op::Read).await?;
        Ok(self.artifacts.get(&path).await?)
    }

    /// Direct children of `path` (relative to the proxy root).
    pub async fn list_artifacts(&self, path: &str) -> Result<Vec<Entry>> {
        let dir = ArtifactPath::parse(path)?;
        self.need_artifact_path(&dir, Op::Read).await?;
        Ok(self.artifacts.list(&ArtifactPath::root(), &dir).await?)
    }

    pub async fn delete_artifact(&self, path: &str) -> Result<()> {
        let parsed = ArtifactPath::parse(path)?;
        self.need_artifact_path(&parsed, Op::Delete).await?;
        self.artifacts.delete(&parsed).await?;
        self.record_change(plinth_core::audit::Action::ArtifactDelete, plinth_core::audit::resource::artifact(path))
            .await
    }

    /// Opens one of a run's artifacts (`path` relative to the run's root,
    /// confined to it): its size and bytes as a stream.
    pub async fn open_run_artifact(
        &self,
        run_id: &str,
        path: &str,
    ) -> Result<(u64, impl Stream<Item = plinth_artifacts::Result<Bytes>> + Send + 'static + use<>)> {
        let run = self.get_run(run_id).await?;
        self.open_under(&run.info.artifact_uri, path, &format!("run {run_id}")).await
    }

    /// A file at `path` below the stored location `root` (an
    /// `mlflow-artifacts:` URI), confined to it; `owner` names whose they are
    /// in the error when `root` is not served here.
    async fn open_under(
        &self,
        root: &str,
        path: &str,
        owner: &str,
    ) -> Result<(u64, impl Stream<Item = plinth_artifacts::Result<Bytes>> + Send + 'static + use<>)> {
        let rel = ArtifactPath::parse(path)?;
        let Some(key) = self.artifact_key(root) else {
            return Err(plinth_core::Error::not_found(format!("{owner} keeps its artifacts elsewhere ({root})")).into());
        };
        let base = ArtifactPath::parse(key)?;
        Ok(self.artifacts.get(&base.join(&rel)).await?)
    }

    /// Opens a file of a registered version's artifacts (`path` relative to
    /// its storage location, confined to it). Versions whose bytes live
    /// outside this server's artifact store are not found here.
    pub async fn open_model_version_artifact(
        &self,
        name: &str,
        version: &str,
        path: &str,
    ) -> Result<(u64, impl Stream<Item = plinth_artifacts::Result<Bytes>> + Send + 'static + use<>)> {
        let location = self.model_version_download_uri(name, version).await?;
        self.open_under(&location, path, &format!("model version {name}/{version}")).await
    }

    /// Lists a run's artifacts under `path`, paths relative to the run's root.
    /// Returns the run's artifact URI too. Runs whose artifacts live outside
    /// this server list as empty.
    pub async fn list_run_artifacts(&self, run_id: &str, path: &str) -> Result<(String, Vec<Entry>)> {
        let run = self.get_run(run_id).await?;
        let dir = ArtifactPath::parse(path)?;
        let Some(key) = self.artifact_key(&run.info.artifact_uri) else {
            return Ok((run.info.artifact_uri, Vec::new()));
        };
        let base = ArtifactPath::parse(key)?;
        Ok((run.info.artifact_uri, self.artifacts.list(&base, &dir).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_from_uris() {
        assert_eq!(artifact_key("mlflow-artifacts:/1/abc/artifacts"), Some("1/abc/artifacts"));
        assert_eq!(artifact_key("mlflow-artifacts://host:5000/1/abc"), Some("1/abc"));
        assert_eq!(artifact_key("s3://bucket/x"), None);
    }
}
