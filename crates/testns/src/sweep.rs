//! Removal of namespaces left behind by killed test runs.

use std::path::Path;

use crate::NAME_PREFIX;

/// Removes `weft-t-<pid>-*` entries whose process no longer exists.
pub(crate) fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(owner_pid) else {
            continue;
        };
        if !process_alive(pid) {
            crate::unmount_and_remove(&entry.path());
        }
    }
}

/// The pid embedded in a kit-made name, if `name` is one.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    rest.split('-').next()?.parse().ok()
}

fn process_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_owner_pid_only_from_kit_names() {
        assert_eq!(owner_pid("weft-t-123-veth-0"), Some(123));
        assert_eq!(owner_pid("weft-t-x-veth-0"), None);
        assert_eq!(owner_pid("other-123"), None);
    }
}
