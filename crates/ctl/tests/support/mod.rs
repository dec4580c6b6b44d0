//! A lab for integration tests: its own directory and namespace prefix, `down` on drop
//! (also on panic), and the weftctl CLI run against it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::Instant;

use weft_ctl::lab::{LabPaths, LabState};

pub const WEFTCTL: &str = env!("CARGO_BIN_EXE_weftctl");

/// Labs of one test binary run one at a time: two busy cores do not fit two clusters.
pub static SERIAL: Mutex<()> = Mutex::new(());

pub struct Lab {
    pub dir: tempfile::TempDir,
    pub prefix: String,
}

impl Lab {
    pub fn new(tag: &str) -> Lab {
        // A lab test that cannot run fails loudly: it never passes by skipping.
        assert!(
            nix::unistd::geteuid().is_root(),
            "the lab tests need root (network namespaces)"
        );
        let bin_dir = Path::new(WEFTCTL).parent().unwrap();
        for bin in ["weftd", "weft", "weft-ipam"] {
            assert!(
                bin_dir.join(bin).is_file(),
                "{} missing; run `cargo build -p weft-agent -p weft-plugin --bins` with the same CARGO_TARGET_DIR (cargo test --workspace builds them)",
                bin_dir.join(bin).display()
            );
        }
        Lab {
            dir: tempfile::tempdir().unwrap(),
            prefix: format!("wlt{tag}{}", std::process::id()),
        }
    }

    pub fn lab_dir(&self) -> PathBuf {
        self.dir.path().join("lab")
    }

    pub fn paths(&self) -> LabPaths {
        LabPaths::new(self.lab_dir(), &self.prefix)
    }

    pub fn state(&self) -> LabState {
        LabState::load(&self.paths()).unwrap()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let started = Instant::now();
        let out = Command::new(WEFTCTL)
            .arg("lab")
            .args(args)
            .env("WEFT_LAB_DIR", self.lab_dir())
            .env("WEFT_LAB_PREFIX", &self.prefix)
            .output()
            .unwrap();
        eprintln!(
            "$ weftctl lab {} ({} ms)\n{}{}",
            args.join(" "),
            started.elapsed().as_millis(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "weftctl lab {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Writes `yaml` to a file named `name` in the test directory; returns its path.
    pub fn file(&self, name: &str, yaml: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        path.to_string_lossy().into_owned()
    }

    pub fn apply(&self, name: &str, yaml: &str) -> String {
        let file = self.file(name, yaml);
        self.ok(&["apply", "-f", &file])
    }

    pub fn delete(&self, name: &str, yaml: &str) -> String {
        let file = self.file(name, yaml);
        self.ok(&["delete", "-f", &file])
    }

    pub fn namespaces_left(&self) -> Vec<String> {
        let prefix = format!("{}-", self.prefix);
        std::fs::read_dir("/run/netns")
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .filter(|n| n.starts_with(&prefix))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.run(&["down"]);
    }
}
