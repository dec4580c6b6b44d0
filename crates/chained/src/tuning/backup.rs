//! The original values tuning replaced, saved as `<dataDir>/<containerID>_<ifname>.json`
//! (the reference plugin's file name) and restored on DEL.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What the interface and its sysctls looked like before ADD changed them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Originals {
    /// Attachment container id (the file name alone is ambiguous: both parts may hold `_`).
    pub container_id: String,
    /// Attachment interface name.
    pub ifname: String,
    /// Original MAC, when tuning changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Original MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Original promiscuous flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promisc: Option<bool>,
    /// Original all-multicast flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allmulti: Option<bool>,
    /// Original transmit queue length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txqlen: Option<u32>,
    /// Original sysctl values (slash-form keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysctls: Vec<(String, String)>,
}

/// The backup file of one attachment.
pub fn backup_path(data_dir: &Path, container_id: &str, ifname: &str) -> PathBuf {
    data_dir.join(format!("{container_id}_{ifname}.json"))
}

/// Reads a backup; `Ok(None)` when there is none.
pub fn load(path: &Path) -> std::io::Result<Option<Originals>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes a backup atomically (temporary file, then rename) unless one exists already: a
/// repeated ADD must not overwrite the true originals with the values it set itself.
pub fn save_once(path: &Path, originals: &Originals) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("backup path has no directory"))?;
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let bytes = serde_json::to_vec(originals).map_err(std::io::Error::other)?;
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Removes a backup; a missing file is fine.
pub fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Every backup in `data_dir` (unreadable files are skipped), with its path.
pub fn list(data_dir: &Path) -> Vec<(PathBuf, Originals)> {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| load(&p).ok().flatten().map(|o| (p, o)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_once_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let path = backup_path(dir.path(), "c_1", "eth0");
        let first = Originals {
            container_id: "c_1".into(),
            ifname: "eth0".into(),
            mtu: Some(1500),
            ..Default::default()
        };
        save_once(&path, &first).unwrap();
        let second = Originals {
            mtu: Some(1400),
            ..first.clone()
        };
        save_once(&path, &second).unwrap();
        assert_eq!(load(&path).unwrap(), Some(first.clone()));
        assert_eq!(list(dir.path()), vec![(path.clone(), first)]);
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert_eq!(load(&path).unwrap(), None);
    }
}
