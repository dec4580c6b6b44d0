//! The plugin entry point: environment and stdin in, exactly one JSON document out.
//!
//! Validation follows the reference skel's order, so the same bad input gets the same code:
//! environment (4) → read stdin (5) → JSON and `name` (6/7) → version (1) → the verb.
//! The entry takes the environment, stdin and stdout as parameters so golden tests never
//! capture the process's own stdout. Output is buffered and written once: a panic halfway can
//! never leave a partial document, and `main_with` turns a panic into an error JSON (999).

use std::io::{Read, Write};

use serde_json::Value;
use weft_proto::{CniEnv, CniError, CniResult, CniVersion, Command, NetConf, VersionInfo, codes};

use crate::error::PluginError;

/// One parsed invocation.
#[derive(Debug, Clone)]
pub struct Request {
    /// Validated `CNI_*` environment.
    pub env: CniEnv,
    /// The common configuration fields.
    pub conf: NetConf,
    /// The configuration's version (the result is returned in it).
    pub version: CniVersion,
    /// The whole configuration, for plugin-specific fields and delegation.
    pub raw: Value,
    /// The exact stdin bytes (delegated plugins get the same).
    pub stdin: Vec<u8>,
    /// The process environment, passed on to delegated plugins.
    pub vars: Vec<(String, String)>,
}

impl Request {
    /// The container id (validated by the env parser for ADD/DEL/CHECK).
    pub fn container_id(&self) -> &str {
        self.env.container_id.as_ref().map_or("", |c| c.as_str())
    }

    /// The pod interface name.
    pub fn ifname(&self) -> &str {
        self.env.ifname.as_ref().map_or("", |i| i.as_str())
    }

    /// The environment for a delegated call with another verb.
    pub fn delegate_env(&self, command: &str) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self
            .vars
            .iter()
            .filter(|(k, _)| k != "CNI_COMMAND")
            .cloned()
            .collect();
        env.push(("CNI_COMMAND".into(), command.into()));
        env
    }
}

/// The verbs a plugin implements. VERSION is answered by the skel itself.
pub trait Plugin {
    /// ADD: returns the result (for chained plugins, the amended `prevResult`).
    fn add(&self, req: &Request) -> Result<CniResult, PluginError>;
    /// DEL: best effort, idempotent.
    fn del(&self, req: &Request) -> Result<(), PluginError>;
    /// CHECK.
    fn check(&self, req: &Request) -> Result<(), PluginError>;
    /// GC (1.1.0).
    fn gc(&self, req: &Request) -> Result<(), PluginError>;
    /// STATUS (1.1.0).
    fn status(&self, req: &Request) -> Result<(), PluginError>;
}

/// Runs one invocation; writes the output document (if any) into `out`; returns the exit code.
pub fn run(
    vars: Vec<(String, String)>,
    stdin: &mut dyn Read,
    out: &mut Vec<u8>,
    plugin: &dyn Plugin,
) -> i32 {
    let mut version_for_errors = CniVersion::LATEST;
    match dispatch(vars, stdin, plugin, &mut version_for_errors) {
        Ok(Some(doc)) => {
            let _ = serde_json::to_writer(&mut *out, &doc);
            0
        }
        Ok(None) => 0,
        Err(err) => {
            let _ = serde_json::to_writer(&mut *out, &err.to_json(version_for_errors.as_str()));
            1
        }
    }
}

fn dispatch(
    vars: Vec<(String, String)>,
    stdin: &mut dyn Read,
    plugin: &dyn Plugin,
    version_for_errors: &mut CniVersion,
) -> Result<Option<Value>, CniError> {
    let env = CniEnv::from_vars(vars.clone())?;
    let mut input = Vec::new();
    if env.command == Command::Version {
        // libcni may send nothing or `{"cniVersion":..}`; a read failure is not fatal here.
        let _ = stdin.read_to_end(&mut input);
        return Ok(Some(VersionInfo::for_stdin(&input).to_json()));
    }
    stdin
        .read_to_end(&mut input)
        .map_err(|e| CniError::new(codes::IO_FAILURE, format!("reading stdin: {e}")))?;
    let (conf, version, raw) = NetConf::parse_raw(&input)?;
    *version_for_errors = version;
    env.command.check_version(version)?;
    let command = env.command;
    let req = Request {
        env,
        conf,
        version,
        raw,
        stdin: input,
        vars,
    };
    let result = match command {
        Command::Add => plugin
            .add(&req)
            .and_then(|r| r.to_json(version).map_err(PluginError::from)),
        Command::Del => plugin.del(&req).map(|()| Value::Null),
        Command::Check => plugin.check(&req).map(|()| Value::Null),
        Command::Gc => plugin.gc(&req).map(|()| Value::Null),
        Command::Status => plugin.status(&req).map(|()| Value::Null),
        Command::Version => Ok(Value::Null),
    };
    match result {
        Ok(Value::Null) => Ok(None),
        Ok(doc) => Ok(Some(doc)),
        Err(e) => Err(e.into_cni()),
    }
}

/// The whole `main` of a plugin binary: reads the process environment and stdin, prints the
/// document on stdout, and exits. A panic becomes an error JSON with code 999, never an
/// empty stdout.
pub fn main_with(plugin: &dyn Plugin) -> ! {
    let vars: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let mut out = Vec::new();
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut stdin = std::io::stdin().lock();
        run(vars, &mut stdin, &mut out, plugin)
    }));
    let code = match code {
        Ok(code) => code,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            out.clear();
            let err = CniError::internal(format!("internal error: {what}"));
            let _ = serde_json::to_writer(&mut out, &err.to_json(CniVersion::LATEST.as_str()));
            1
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&out);
    let _ = stdout.flush();
    std::process::exit(code)
}
