//! Names: which binaries weft ships, and the temporary names used while installing them.

/// The CNI plugin binaries weft ships (the `[[bin]]`s of `weft-plugin` and `weft-chained`).
pub const PLUGIN_BINARIES: &[&str] = &[
    "weft",
    "weft-ipam",
    "weft-loopback",
    "weft-portmap",
    "weft-bandwidth",
    "weft-tuning",
];

/// The conflist `weftd` writes into the CNI config dir (removed by uninstall).
pub const WEFT_CONFLIST: &str = "10-weft.conflist";

/// Prefix of temporary files. The leading dot keeps them out of a runtime's plugin lookup
/// by type name, and the fixed prefix lets a later run find and remove leftovers.
const TEMP_PREFIX: &str = ".weft-install.";

/// What happened to one binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It was not there.
    Installed,
    /// A different version was replaced (by rename).
    Replaced,
    /// Already identical; not touched.
    Unchanged,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Installed => "installed",
            Action::Replaced => "replaced",
            Action::Unchanged => "unchanged",
        })
    }
}

/// Temporary name for `binary` written by process `pid`.
pub fn temp_name(binary: &str, pid: u32) -> String {
    format!("{TEMP_PREFIX}{binary}.{pid}.tmp")
}

/// True for names produced by [`temp_name`].
pub fn is_our_temp_file(name: &str) -> bool {
    name.strip_prefix(TEMP_PREFIX)
        .and_then(|rest| rest.strip_suffix(".tmp"))
        .and_then(|rest| rest.rsplit_once('.'))
        .is_some_and(|(binary, pid)| {
            PLUGIN_BINARIES.contains(&binary) && pid.bytes().all(|b| b.is_ascii_digit())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_round_trip_and_nothing_else_matches() {
        for b in PLUGIN_BINARIES {
            assert!(is_our_temp_file(&temp_name(b, 42)));
        }
        for other in [
            "weft",
            ".weft-install.bridge.1.tmp",
            ".weft-install.weft.x.tmp",
            ".weft-install.weft.1",
            "10-weft.conflist",
            ".weft-tmp.1",
        ] {
            assert!(!is_our_temp_file(other), "{other}");
        }
    }
}
