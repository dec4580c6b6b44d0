//! A minimal libcni: what a container runtime does with a conflist, so that tests, benchmarks
//! and the lab drive weft (and the reference plugins) exactly as containerd, CRI-O or podman do.
//!
//! - ADD runs the plugins in list order; each gets the previous one's result as `prevResult`;
//!   the final result is cached.
//! - DEL runs them in reverse order, each with the cached final result as `prevResult`; the
//!   cache entry is removed only when every plugin succeeded, so a retry sees the same input.
//! - CHECK runs in list order with the cached result; GC and STATUS in list order.
//! - `runtimeConfig` holds exactly the capability keys a plugin declares in `capabilities` that
//!   the caller supplied.
//!
//! Plugins are executed with a clean environment holding only the `CNI_*` variables (plus
//! `PATH`), in the "node" network namespace given at construction: the child is spawned from
//! a short-lived thread that has entered that namespace, so the caller's threads never move.

mod exec;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

pub use exec::{PluginOutput, exec_in_netns};

/// Failures while running a plugin chain.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// Starting a plugin, or entering the node namespace, failed.
    #[error("running {plugin}: {source}")]
    Exec {
        /// Plugin type.
        plugin: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A plugin exited non-zero.
    #[error("{plugin} {command} failed (code {code}): {msg}")]
    Plugin {
        /// Plugin type.
        plugin: String,
        /// The CNI verb.
        command: String,
        /// The error code from its error JSON (0 if none was parsable).
        code: u64,
        /// Its message (or raw output when it printed no error JSON).
        msg: String,
    },
    /// A plugin printed something that is not the JSON the protocol requires.
    #[error("{plugin} {command} printed invalid JSON: {detail}")]
    BadOutput {
        /// Plugin type.
        plugin: String,
        /// The CNI verb.
        command: String,
        /// What was wrong.
        detail: String,
    },
    /// The conflist is unusable.
    #[error("invalid network configuration list: {0}")]
    BadList(String),
    /// Reading or writing the result cache failed.
    #[error("result cache {path}: {source}")]
    Cache {
        /// The cache file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// One attachment: a container's interface on a network.
#[derive(Debug, Clone, Default)]
pub struct Attachment {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`: the pod namespace path (empty on a DEL after the namespace is gone).
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS` pairs, e.g. `K8S_POD_NAME`.
    pub cni_args: Vec<(String, String)>,
    /// Capability arguments offered to plugins (e.g. `portMappings`, `mac`, `ips`).
    pub capability_args: Map<String, Value>,
}

impl Attachment {
    /// An attachment with the Kubernetes-style `CNI_ARGS` a CRI runtime passes.
    pub fn kubernetes(container_id: &str, netns: &str, ifname: &str, pod: &str) -> Self {
        Attachment {
            container_id: container_id.to_string(),
            netns: netns.to_string(),
            ifname: ifname.to_string(),
            cni_args: vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K8S_POD_NAMESPACE".into(), "default".into()),
                ("K8S_POD_NAME".into(), pod.into()),
                ("K8S_POD_INFRA_CONTAINER_ID".into(), container_id.into()),
                ("K8S_POD_UID".into(), format!("uid-{container_id}")),
            ],
            capability_args: Map::new(),
        }
    }
}

/// A runtime: where plugins are found, which namespace they run in, where results are cached.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// `CNI_PATH` directories.
    pub cni_path: Vec<PathBuf>,
    /// The namespace the plugins run in (the simulated node); `None` = the caller's.
    pub node_netns: Option<PathBuf>,
    /// Result cache directory.
    pub cache_dir: PathBuf,
}

impl Runtime {
    /// Environment for one plugin call, as libcni builds it.
    fn env(&self, command: &str, att: Option<&Attachment>) -> Vec<(String, String)> {
        let path = std::env::join_paths(&self.cni_path)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (cid, netns, ifname, args) = match att {
            Some(a) => (
                a.container_id.clone(),
                a.netns.clone(),
                a.ifname.clone(),
                a.cni_args
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(";"),
            ),
            None => Default::default(),
        };
        vec![
            ("CNI_COMMAND".into(), command.into()),
            ("CNI_CONTAINERID".into(), cid),
            ("CNI_NETNS".into(), netns),
            ("CNI_IFNAME".into(), ifname),
            ("CNI_ARGS".into(), args),
            ("CNI_PATH".into(), path),
            ("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        ]
    }

    /// Runs one plugin binary (found in `cni_path`) with raw env and stdin.
    pub fn exec_raw(
        &self,
        plugin: &str,
        command: &str,
        att: Option<&Attachment>,
        stdin: &[u8],
    ) -> Result<PluginOutput, RuntimeError> {
        let bin = self
            .cni_path
            .iter()
            .map(|d| d.join(plugin))
            .find(|p| p.is_file())
            .ok_or_else(|| RuntimeError::Exec {
                plugin: plugin.to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not in CNI_PATH"),
            })?;
        let env = self.env(command, att);
        exec_in_netns(self.node_netns.as_deref(), &bin, &env, stdin).map_err(|source| {
            RuntimeError::Exec {
                plugin: plugin.to_string(),
                source,
            }
        })
    }

    /// Runs one plugin and turns a failure into `RuntimeError::Plugin`; returns stdout.
    fn exec_ok(
        &self,
        plugin: &str,
        command: &str,
        att: Option<&Attachment>,
        stdin: &Value,
    ) -> Result<Vec<u8>, RuntimeError> {
        let out = self.exec_raw(plugin, command, att, stdin.to_string().as_bytes())?;
        if out.status == 0 {
            return Ok(out.stdout);
        }
        let parsed: Option<Value> = serde_json::from_slice(&out.stdout).ok();
        let (code, msg) = match parsed {
            Some(v) => (
                v.get("code").and_then(Value::as_u64).unwrap_or(0),
                v.get("msg")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            ),
            None => (0, String::from_utf8_lossy(&out.stderr).trim().to_string()),
        };
        Err(RuntimeError::Plugin {
            plugin: plugin.to_string(),
            command: command.to_string(),
            code,
            msg,
        })
    }

    fn cache_path(&self, list: &Value, att: &Attachment) -> PathBuf {
        let name = list.get("name").and_then(Value::as_str).unwrap_or("");
        self.cache_dir
            .join(format!("{name}-{}-{}", att.container_id, att.ifname))
    }

    /// ADD through the whole list; returns the final result and caches it.
    pub fn add(&self, list: &Value, att: &Attachment) -> Result<Value, RuntimeError> {
        let mut prev: Option<Value> = None;
        for plugin in plugins(list)? {
            let (ty, conf) = request_conf(list, plugin, att, prev.as_ref())?;
            let out = self.exec_ok(&ty, "ADD", Some(att), &conf)?;
            let result: Value =
                serde_json::from_slice(&out).map_err(|e| RuntimeError::BadOutput {
                    plugin: ty.clone(),
                    command: "ADD".into(),
                    detail: e.to_string(),
                })?;
            prev = Some(result);
        }
        let result = prev.unwrap_or(Value::Null);
        let path = self.cache_path(list, att);
        let write = std::fs::create_dir_all(&self.cache_dir)
            .and_then(|_| std::fs::write(&path, result.to_string()));
        write.map_err(|source| RuntimeError::Cache { path, source })?;
        Ok(result)
    }

    /// The cached final ADD result of an attachment, if any.
    pub fn cached_result(&self, list: &Value, att: &Attachment) -> Option<Value> {
        let bytes = std::fs::read(self.cache_path(list, att)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// DEL through the list in reverse order, with the cached result as `prevResult`.
    pub fn del(&self, list: &Value, att: &Attachment) -> Result<(), RuntimeError> {
        let cached = self.cached_result(list, att);
        for plugin in plugins(list)?.iter().rev() {
            let (ty, conf) = request_conf(list, plugin, att, cached.as_ref())?;
            self.exec_ok(&ty, "DEL", Some(att), &conf)?;
        }
        let path = self.cache_path(list, att);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(RuntimeError::Cache { path, source: e })
            }
            _ => Ok(()),
        }
    }

    /// CHECK through the list with the cached result.
    pub fn check(&self, list: &Value, att: &Attachment) -> Result<(), RuntimeError> {
        let cached = self.cached_result(list, att);
        for plugin in plugins(list)? {
            let (ty, conf) = request_conf(list, plugin, att, cached.as_ref())?;
            self.exec_ok(&ty, "CHECK", Some(att), &conf)?;
        }
        Ok(())
    }

    /// GC through the list: every attachment not in `valid` may be cleaned up.
    pub fn gc(&self, list: &Value, valid: &[(String, String)]) -> Result<(), RuntimeError> {
        let valid: Vec<Value> = valid
            .iter()
            .map(|(c, i)| json!({"containerID": c, "ifname": i}))
            .collect();
        let mut first_err = None;
        for plugin in plugins(list)? {
            let (ty, mut conf) = request_conf(list, plugin, &Attachment::default(), None)?;
            if let Some(obj) = conf.as_object_mut() {
                obj.remove("runtimeConfig");
                obj.insert(
                    "cni.dev/valid-attachments".into(),
                    Value::from(valid.clone()),
                );
                obj.insert("cni.dev/attachments".into(), Value::from(valid.clone()));
            }
            // libcni continues past GC errors and reports the first.
            if let Err(e) = self.exec_ok(&ty, "GC", None, &conf) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// STATUS through the list; stops at the first failing plugin.
    pub fn status(&self, list: &Value) -> Result<(), RuntimeError> {
        for plugin in plugins(list)? {
            let (ty, mut conf) = request_conf(list, plugin, &Attachment::default(), None)?;
            if let Some(obj) = conf.as_object_mut() {
                obj.remove("runtimeConfig");
            }
            self.exec_ok(&ty, "STATUS", None, &conf)?;
        }
        Ok(())
    }

    /// VERSION of one plugin type.
    pub fn version(&self, plugin: &str, cni_version: &str) -> Result<Value, RuntimeError> {
        let out = self.exec_ok(
            plugin,
            "VERSION",
            None,
            &json!({ "cniVersion": cni_version }),
        )?;
        serde_json::from_slice(&out).map_err(|e| RuntimeError::BadOutput {
            plugin: plugin.to_string(),
            command: "VERSION".into(),
            detail: e.to_string(),
        })
    }
}

fn plugins(list: &Value) -> Result<&Vec<Value>, RuntimeError> {
    match list.get("plugins").and_then(Value::as_array) {
        Some(p) if !p.is_empty() => Ok(p),
        _ => Err(RuntimeError::BadList(
            "`plugins` must be a non-empty list".into(),
        )),
    }
}

/// Builds the request configuration for one plugin of the list (libcni's `buildOneConfig`):
/// `name` and `cniVersion` from the list, `runtimeConfig` from the declared capabilities,
/// and `prevResult`. Returns the plugin type and the config.
pub fn request_conf(
    list: &Value,
    plugin: &Value,
    att: &Attachment,
    prev: Option<&Value>,
) -> Result<(String, Value), RuntimeError> {
    let mut conf = plugin
        .as_object()
        .cloned()
        .ok_or_else(|| RuntimeError::BadList("a plugin entry is not an object".into()))?;
    let ty = conf
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| RuntimeError::BadList("a plugin entry has no `type`".into()))?
        .to_string();
    for key in ["name", "cniVersion"] {
        if let Some(v) = list.get(key) {
            conf.insert(key.into(), v.clone());
        }
    }
    let caps = conf.get("capabilities").and_then(Value::as_object);
    let runtime_config: Map<String, Value> = att
        .capability_args
        .iter()
        .filter(|(k, _)| {
            caps.and_then(|c| c.get(k.as_str()))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !runtime_config.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(runtime_config));
    }
    if let Some(p) = prev {
        conf.insert("prevResult".into(), p.clone());
    }
    Ok((ty, Value::Object(conf)))
}

/// Reads a conflist file (or a legacy single-plugin `.conf`, up-converted to a list).
pub fn load_conflist(path: &Path) -> Result<Value, RuntimeError> {
    let bytes = std::fs::read(path).map_err(|source| RuntimeError::Cache {
        path: path.to_path_buf(),
        source,
    })?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| RuntimeError::BadList(e.to_string()))?;
    if v.get("plugins").is_some() {
        return Ok(v);
    }
    Ok(json!({
        "cniVersion": v.get("cniVersion").cloned().unwrap_or(Value::Null),
        "name": v.get("name").cloned().unwrap_or(Value::Null),
        "plugins": [v],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_conf_injects_name_version_capabilities_and_prev() {
        let list = json!({"cniVersion": "1.0.0", "name": "net", "plugins": []});
        let plugin = json!({"type": "weft", "capabilities": {"mac": true}});
        let mut att = Attachment::default();
        att.capability_args
            .insert("mac".into(), json!("02:00:00:00:00:01"));
        att.capability_args.insert("portMappings".into(), json!([]));
        let prev = json!({"cniVersion": "1.0.0"});
        let (ty, conf) = request_conf(&list, &plugin, &att, Some(&prev)).unwrap();
        assert_eq!(ty, "weft");
        assert_eq!(conf["name"], "net");
        assert_eq!(conf["cniVersion"], "1.0.0");
        assert_eq!(conf["runtimeConfig"], json!({"mac": "02:00:00:00:00:01"}));
        assert_eq!(conf["prevResult"], prev);
    }

    #[test]
    fn legacy_conf_becomes_a_list() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("10-x.conf");
        std::fs::write(&p, r#"{"cniVersion":"0.4.0","name":"x","type":"bridge"}"#).unwrap();
        let l = load_conflist(&p).unwrap();
        assert_eq!(l["plugins"][0]["type"], "bridge");
        assert_eq!(l["name"], "x");
    }
}
