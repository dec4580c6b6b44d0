//! `CNI_*` environment parsing, taken as data (never read from the process here).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::args::CniArgs;
use crate::error::CniError;
use crate::ids::{ContainerId, IfName};
use crate::version::CniVersion;

/// The `CNI_COMMAND` verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `ADD`.
    Add,
    /// `DEL`.
    Del,
    /// `CHECK` (0.4.0+).
    Check,
    /// `GC` (1.1.0+).
    Gc,
    /// `STATUS` (1.1.0+).
    Status,
    /// `VERSION`.
    Version,
}

impl Command {
    /// The wire name, e.g. `"ADD"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Gc => "GC",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
        }
    }

    /// Code 1 when the config version predates the verb (Ref skel: CHECK needs 0.4.0,
    /// GC and STATUS need 1.1.0).
    pub fn check_version(self, version: CniVersion) -> Result<(), CniError> {
        let allowed = match self {
            Command::Check => version.allows_check(),
            Command::Gc | Command::Status => version.allows_gc_status(),
            Command::Add | Command::Del | Command::Version => true,
        };
        if allowed {
            Ok(())
        } else {
            Err(CniError::incompatible_version(format!(
                "config version {version} does not allow {}",
                self.as_str()
            )))
        }
    }

    /// Verbs that act on one attachment and so read the attachment variables and `CNI_ARGS`.
    fn is_attachment_verb(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

impl FromStr for Command {
    type Err = CniError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ADD" => Ok(Command::Add),
            "DEL" => Ok(Command::Del),
            "CHECK" => Ok(Command::Check),
            "GC" => Ok(Command::Gc),
            "STATUS" => Ok(Command::Status),
            "VERSION" => Ok(Command::Version),
            "" => Err(CniError::invalid_env(
                "required env variable CNI_COMMAND missing",
            )),
            other => Err(CniError::invalid_env(format!(
                "unknown CNI_COMMAND: {other}"
            ))),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The validated CNI environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniEnv {
    /// `CNI_COMMAND`.
    pub command: Command,
    /// `CNI_CONTAINERID` (ADD/DEL/CHECK only).
    pub container_id: Option<ContainerId>,
    /// `CNI_NETNS` (required for ADD/CHECK; `None` when empty on DEL).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME` (ADD/DEL/CHECK only).
    pub ifname: Option<IfName>,
    /// Parsed `CNI_ARGS` (ADD/DEL/CHECK only; default otherwise).
    pub args: CniArgs,
    /// `CNI_ARGS` as received, for delegation and logs.
    pub args_raw: String,
    /// `CNI_PATH` entries, empty entries dropped.
    pub path: Vec<PathBuf>,
    /// Ref `CNI_NETNS_OVERRIDE=1|true`: skip the "netns is our own" check.
    pub netns_override: bool,
}

fn required(vars: &HashMap<String, String>, name: &str) -> Result<String, CniError> {
    match vars.get(name) {
        Some(v) if !v.is_empty() => Ok(v.clone()),
        _ => Err(CniError::invalid_env(format!(
            "required env variable {name} missing"
        ))),
    }
}

fn optional<'a>(vars: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

impl CniEnv {
    /// Validates the environment given as (name, value) pairs, like the Ref skel:
    /// ADD/CHECK need `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`; DEL needs the id and
    /// ifname; GC/STATUS need only `CNI_COMMAND`; VERSION checks nothing else (libcni
    /// passes `dummy` values). An empty value counts as missing (libcni exports all six
    /// variables, empty when unknown). Every error is code 4 and names the variable.
    pub fn from_vars<I: IntoIterator<Item = (String, String)>>(
        vars: I,
    ) -> Result<CniEnv, CniError> {
        let vars: HashMap<String, String> = vars.into_iter().collect();
        let command: Command = vars
            .get("CNI_COMMAND")
            .map(String::as_str)
            .unwrap_or("")
            .parse()?;
        let path = optional(&vars, "CNI_PATH")
            .map(|p| {
                p.split(':')
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default();
        let netns_override = optional(&vars, "CNI_NETNS_OVERRIDE")
            .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
        let mut env = CniEnv {
            command,
            container_id: None,
            netns: None,
            ifname: None,
            args: CniArgs::default(),
            args_raw: String::new(),
            path,
            netns_override,
        };
        if !command.is_attachment_verb() {
            return Ok(env);
        }
        env.container_id = Some(ContainerId::parse(&required(&vars, "CNI_CONTAINERID")?)?);
        env.netns = match command {
            Command::Del => optional(&vars, "CNI_NETNS").map(PathBuf::from),
            _ => Some(PathBuf::from(required(&vars, "CNI_NETNS")?)),
        };
        env.ifname = Some(IfName::parse(&required(&vars, "CNI_IFNAME")?)?);
        env.args_raw = optional(&vars, "CNI_ARGS").unwrap_or("").to_owned();
        env.args = CniArgs::parse(&env.args_raw)?;
        Ok(env)
    }

    /// The attachment key (container id, ifname); always present after a successful
    /// [`CniEnv::from_vars`] for ADD/DEL/CHECK, code 4 otherwise. Saves callers an unwrap.
    pub fn attachment(&self) -> Result<(&ContainerId, &IfName), CniError> {
        match (&self.container_id, &self.ifname) {
            (Some(id), Some(ifname)) => Ok((id, ifname)),
            _ => Err(CniError::invalid_env(format!(
                "{} has no CNI_CONTAINERID/CNI_IFNAME",
                self.command
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, CniError> {
        CniEnv::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    const ADD: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin::/usr/lib/cni"),
    ];

    fn without(name: &str) -> Vec<(&'static str, &'static str)> {
        ADD.iter().copied().filter(|(k, _)| *k != name).collect()
    }

    #[test]
    fn full_add() {
        let e = env(ADD).unwrap();
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.container_id.as_ref().unwrap().as_str(), "abc");
        assert_eq!(e.ifname.as_ref().unwrap().as_str(), "eth0");
        assert_eq!(e.attachment().unwrap().0.as_str(), "abc");
        assert_eq!(
            e.path,
            vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
    }

    #[test]
    fn add_missing_vars_name_them() {
        for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
            let e = env(&without(var)).unwrap_err();
            assert_eq!(e.code, codes::INVALID_ENV);
            assert!(e.msg.contains(var), "{}", e.msg);
            let mut empty = without(var);
            empty.push((var, ""));
            assert_eq!(env(&empty).unwrap_err().code, codes::INVALID_ENV);
        }
    }

    #[test]
    fn unknown_or_missing_command() {
        let e = env(&[("CNI_COMMAND", "FOO")]).unwrap_err();
        assert_eq!(e.code, codes::INVALID_ENV);
        assert!(e.msg.contains("FOO"));
        assert_eq!(env(&[]).unwrap_err().code, codes::INVALID_ENV);
        assert!("add".parse::<Command>().is_err());
    }

    #[test]
    fn del_without_netns() {
        let mut vars = without("CNI_NETNS");
        vars[0] = ("CNI_COMMAND", "DEL");
        assert_eq!(env(&vars).unwrap().netns, None);
        vars.push(("CNI_NETNS", ""));
        assert_eq!(env(&vars).unwrap().netns, None);
        let mut vars = without("CNI_IFNAME");
        vars[0] = ("CNI_COMMAND", "DEL");
        assert!(env(&vars).is_err());
    }

    #[test]
    fn gc_status_version_need_nothing_else() {
        for cmd in ["GC", "STATUS", "VERSION"] {
            let e = env(&[("CNI_COMMAND", cmd), ("CNI_ARGS", "FOO=bar")]).unwrap();
            assert!(e.container_id.is_none() && e.ifname.is_none());
            assert_eq!(e.attachment().unwrap_err().code, codes::INVALID_ENV);
        }
        let v = env(&[
            ("CNI_COMMAND", "VERSION"),
            ("CNI_NETNS", "dummy"),
            ("CNI_IFNAME", "dummy"),
            ("CNI_PATH", "dummy"),
        ]);
        assert!(v.is_ok());
    }

    #[test]
    fn bad_ids_and_args_are_code_4() {
        let cases = [
            ("CNI_IFNAME", "0123456789abcdef"),
            ("CNI_IFNAME", ".."),
            ("CNI_IFNAME", "a b"),
            ("CNI_CONTAINERID", "-abc"),
            ("CNI_CONTAINERID", "a/b"),
            ("CNI_ARGS", "FOO=bar"),
            ("CNI_ARGS", "FOO"),
        ];
        for (var, value) in cases {
            let mut vars = without(var);
            vars.push((var, value));
            assert_eq!(
                env(&vars).unwrap_err().code,
                codes::INVALID_ENV,
                "{var}={value}"
            );
        }
    }

    #[test]
    fn verb_version_gates() {
        assert_eq!(
            Command::Check
                .check_version(CniVersion::V0_3_1)
                .unwrap_err()
                .code,
            codes::INCOMPATIBLE_VERSION
        );
        assert!(Command::Gc.check_version(CniVersion::V1_0_0).is_err());
        assert!(Command::Status.check_version(CniVersion::V1_1_0).is_ok());
        assert!(Command::Add.check_version(CniVersion::V0_1_0).is_ok());
    }
}
