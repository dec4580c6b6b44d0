//! Choosing and opening a datastore from configuration.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::datastore::Datastore;
use crate::embedded::EmbeddedStore;
use crate::error::StoreError;
use crate::etcd::{EtcdOptions, EtcdStore};

/// Which datastore an agent uses, as written in its config file.
///
/// JSON: `{"type":"embedded","dir":"/var/lib/weft/store"}` or
/// `{"type":"etcd","endpoints":["http://127.0.0.1:2379"],"prefix":"/weft/v1"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum StoreConfig {
    /// File-backed store in a directory shared by the agents of one host.
    Embedded {
        /// The store directory.
        dir: PathBuf,
    },
    /// etcd v3.
    Etcd {
        /// Client URLs.
        endpoints: Vec<String>,
        /// Key prefix (default `/weft/v1`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
}

impl StoreConfig {
    /// Opens the configured store (etcd: connects lazily; the first request may fail if
    /// etcd is down, later ones succeed once it is back).
    pub async fn open(&self) -> Result<Arc<dyn Datastore>, StoreError> {
        match self {
            StoreConfig::Embedded { dir } => Ok(Arc::new(EmbeddedStore::open(dir)?)),
            StoreConfig::Etcd { endpoints, prefix } => {
                let mut options = EtcdOptions::default();
                if let Some(p) = prefix {
                    options.prefix.clone_from(p);
                }
                Ok(Arc::new(EtcdStore::connect(endpoints, options).await?))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shapes() {
        let e: StoreConfig = serde_json::from_str(r#"{"type":"embedded","dir":"/tmp/x"}"#).unwrap();
        assert_eq!(
            e,
            StoreConfig::Embedded {
                dir: "/tmp/x".into()
            }
        );
        let c: StoreConfig =
            serde_json::from_str(r#"{"type":"etcd","endpoints":["http://127.0.0.1:2379"]}"#)
                .unwrap();
        assert!(matches!(c, StoreConfig::Etcd { prefix: None, .. }));
    }

    #[tokio::test]
    async fn opens_embedded() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreConfig::Embedded {
            dir: dir.path().into(),
        }
        .open()
        .await
        .unwrap();
        assert!(store.list("nodes").await.unwrap().entries.is_empty());
    }
}
