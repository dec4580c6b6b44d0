//! Delegation to another plugin binary (an IPAM plugin such as the reference `host-local`),
//! exactly as the spec's "Delegated plugin protocol" says: find `type` in `CNI_PATH`, run it
//! with the same environment (only `CNI_COMMAND` may differ) and the whole request config on
//! stdin, read its stdout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

/// Why a delegated plugin call failed.
#[derive(Debug, thiserror::Error)]
pub enum DelegateError {
    /// The plugin type names a path or is empty.
    #[error("invalid plugin type {0:?}: must be a plain file name")]
    BadType(String),
    /// No executable of that name in any `CNI_PATH` directory.
    #[error("plugin {plugin:?} not found in CNI_PATH {path:?}")]
    NotFound {
        /// The plugin type looked for.
        plugin: String,
        /// The directories searched.
        path: Vec<PathBuf>,
    },
    /// Starting or talking to the process failed.
    #[error("running plugin {plugin:?}: {source}")]
    Exec {
        /// The plugin type.
        plugin: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The plugin reported an error (its error JSON, or its stderr when stdout was empty).
    #[error("plugin {plugin:?} failed: {msg}")]
    Failed {
        /// The plugin type.
        plugin: String,
        /// Its CNI error code (0 when it printed no parsable error).
        code: u32,
        /// Its message.
        msg: String,
        /// Its details.
        details: String,
    },
}

/// Finds an executable named `plugin` in the `CNI_PATH` directories, in order.
pub fn find_plugin(plugin: &str, cni_path: &[PathBuf]) -> Result<PathBuf, DelegateError> {
    if plugin.is_empty() || plugin.contains('/') || plugin.contains('\\') || plugin == ".." {
        return Err(DelegateError::BadType(plugin.to_string()));
    }
    cni_path
        .iter()
        .map(|dir| dir.join(plugin))
        .find(|p| is_executable(p))
        .ok_or_else(|| DelegateError::NotFound {
            plugin: plugin.to_string(),
            path: cni_path.to_vec(),
        })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Runs a delegated plugin. `env` is the complete environment to give it (the caller's
/// environment with `CNI_COMMAND` set to the verb); returns its stdout on success.
pub fn exec_plugin(
    plugin: &str,
    cni_path: &[PathBuf],
    env: &[(String, String)],
    stdin: &[u8],
) -> Result<Vec<u8>, DelegateError> {
    let bin = find_plugin(plugin, cni_path)?;
    let exec_err = |source| DelegateError::Exec {
        plugin: plugin.to_string(),
        source,
    };
    let mut child = Command::new(&bin)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(exec_err)?;
    if let Some(mut input) = child.stdin.take() {
        // A plugin may exit without reading stdin (e.g. on an env error): ignore EPIPE.
        let _ = input.write_all(stdin);
    }
    let out = child.wait_with_output().map_err(exec_err)?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    Err(parse_failure(plugin, &out.stdout, &out.stderr))
}

/// libcni's rule: a failing plugin's stdout is its error JSON; if stdout is empty, stderr is
/// the message.
fn parse_failure(plugin: &str, stdout: &[u8], stderr: &[u8]) -> DelegateError {
    let parsed: Option<Value> = serde_json::from_slice(stdout).ok();
    let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match parsed {
        Some(v) => DelegateError::Failed {
            plugin: plugin.to_string(),
            code: v
                .get("code")
                .and_then(Value::as_u64)
                .and_then(|c| u32::try_from(c).ok())
                .unwrap_or(0),
            msg: field(&v, "msg"),
            details: field(&v, "details"),
        },
        None => {
            let text = if stdout.is_empty() { stderr } else { stdout };
            DelegateError::Failed {
                plugin: plugin.to_string(),
                code: 0,
                msg: String::from_utf8_lossy(text).trim().to_string(),
                details: String::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_types_that_are_paths() {
        for t in ["", "../x", "/bin/sh", "a\\b"] {
            assert!(
                matches!(find_plugin(t, &[]), Err(DelegateError::BadType(_))),
                "{t}"
            );
        }
    }

    #[test]
    fn searches_cni_path_in_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let p = b.path().join("fake");
        std::fs::write(
            &p,
            "#!/bin/sh\necho '{\"code\":50,\"msg\":\"down\"}'; exit 1\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(find_plugin("fake", &path).unwrap(), p);
        match exec_plugin("fake", &path, &[], b"{}") {
            Err(DelegateError::Failed { code, msg, .. }) => {
                assert_eq!(code, 50);
                assert_eq!(msg, "down");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            find_plugin("missing", &path),
            Err(DelegateError::NotFound { .. })
        ));
    }
}
