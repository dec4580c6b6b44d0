//! weft-install-cni against temp dirs: atomic install, upgrade while a plugin runs,
//! idempotence, uninstall.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use weft_install::{Action, PLUGIN_BINARIES, WEFT_CONFLIST, install, uninstall};

/// A source dir with every plugin name holding `content`.
fn source_with(dir: &Path, content: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    for name in PLUGIN_BINARIES {
        fs::write(dir.join(name), content).unwrap();
    }
}

/// Spawns `program`, retrying on ETXTBSY: in a multi-threaded test binary another thread's
/// fork can briefly hold a just-written file open (the classic fork/exec race).
fn spawn_retrying(program: &Path, arg: &str) -> Child {
    for _ in 0..50 {
        match Command::new(program).arg(arg).spawn() {
            Ok(child) => return child,
            Err(e) if e.raw_os_error() == Some(26) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("spawn {}: {e}", program.display()),
        }
    }
    panic!("spawn {}: text file busy", program.display());
}

#[test]
fn installs_all_binaries_executable_and_leaves_no_temp_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dest) = (tmp.path().join("src"), tmp.path().join("opt/cni/bin"));
    source_with(&src, b"v1");
    fs::create_dir_all(&dest).unwrap();
    fs::write(dest.join("bridge"), b"reference plugin").unwrap();
    let report = install(&src, &dest, PLUGIN_BINARIES).unwrap();
    assert!(report.actions.iter().all(|(_, a)| *a == Action::Installed));
    for name in PLUGIN_BINARIES {
        let meta = fs::metadata(dest.join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755, "{name}");
        assert_eq!(fs::read(dest.join(name)).unwrap(), b"v1");
    }
    let mut names: Vec<String> = fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut expected: Vec<String> = PLUGIN_BINARIES.iter().map(|s| s.to_string()).collect();
    expected.push("bridge".into());
    expected.sort();
    assert_eq!(names, expected, "only the binaries, no temp files");
}

#[test]
fn missing_source_binary_installs_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dest) = (tmp.path().join("src"), tmp.path().join("bin"));
    source_with(&src, b"v1");
    fs::remove_file(src.join("weft-tuning")).unwrap();
    let e = install(&src, &dest, PLUGIN_BINARIES).unwrap_err();
    assert!(e.to_string().contains("weft-tuning"), "{e}");
    assert!(!dest.join("weft").exists());
}

#[test]
fn second_install_is_a_no_op_and_keeps_the_inodes() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dest) = (tmp.path().join("src"), tmp.path().join("bin"));
    source_with(&src, b"same");
    install(&src, &dest, PLUGIN_BINARIES).unwrap();
    let inode = fs::metadata(dest.join("weft")).unwrap().ino();
    let again = install(&src, &dest, PLUGIN_BINARIES).unwrap();
    assert!(again.actions.iter().all(|(_, a)| *a == Action::Unchanged));
    assert_eq!(fs::metadata(dest.join("weft")).unwrap().ino(), inode);
    // A wrong mode alone is repaired (by a fresh copy, never by chmod on the live file).
    fs::set_permissions(dest.join("weft"), fs::Permissions::from_mode(0o644)).unwrap();
    let fixed = install(&src, &dest, PLUGIN_BINARIES).unwrap();
    assert_eq!(fixed.actions[0], ("weft".to_string(), Action::Replaced));
    assert_ne!(fs::metadata(dest.join("weft")).unwrap().ino(), inode);
}

#[test]
fn stale_temp_files_of_a_killed_run_are_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dest) = (tmp.path().join("src"), tmp.path().join("bin"));
    source_with(&src, b"v1");
    fs::create_dir_all(&dest).unwrap();
    let stale = dest.join(weft_install::temp_name("weft", 7));
    fs::write(&stale, b"half").unwrap();
    install(&src, &dest, PLUGIN_BINARIES).unwrap();
    assert!(!stale.exists());
}

#[test]
fn upgrade_while_the_old_version_is_running() {
    let tmp = tempfile::tempdir().unwrap();
    let (v1, v2, dest) = (
        tmp.path().join("v1"),
        tmp.path().join("v2"),
        tmp.path().join("bin"),
    );
    let sleep = fs::read("/bin/sleep").unwrap();
    source_with(&v1, &sleep);
    // Trailing bytes after an ELF image are ignored by the loader: a runnable "v2".
    let mut newer = sleep.clone();
    newer.extend_from_slice(b"weft v2");
    source_with(&v2, &newer);

    install(&v1, &dest, PLUGIN_BINARIES).unwrap();
    let mut running = spawn_retrying(&dest.join("weft"), "30");
    let report = install(&v2, &dest, PLUGIN_BINARIES).unwrap();
    assert!(report.actions.iter().all(|(_, a)| *a == Action::Replaced));
    assert_eq!(fs::read(dest.join("weft")).unwrap(), newer);
    assert!(
        running.try_wait().unwrap().is_none(),
        "the old version kept running"
    );
    // What the running process executes is still v1, untouched.
    let exe = fs::read(format!("/proc/{}/exe", running.id())).unwrap();
    assert_eq!(exe, sleep);
    let status = spawn_retrying(&dest.join("weft"), "0").wait().unwrap();
    assert!(status.success(), "the new version runs");
    running.kill().unwrap();
    running.wait().unwrap();
}

#[test]
fn uninstall_removes_exactly_what_weft_owns() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dest, conf) = (
        tmp.path().join("src"),
        tmp.path().join("bin"),
        tmp.path().join("net.d"),
    );
    source_with(&src, b"v1");
    install(&src, &dest, PLUGIN_BINARIES).unwrap();
    fs::write(dest.join("bridge"), b"keep").unwrap();
    fs::write(dest.join(weft_install::temp_name("weft-ipam", 9)), b"x").unwrap();
    fs::create_dir_all(&conf).unwrap();
    fs::write(conf.join(WEFT_CONFLIST), b"{}").unwrap();
    fs::write(conf.join("99-other.conflist"), b"{}").unwrap();

    let removed = uninstall(&dest, &conf, PLUGIN_BINARIES).unwrap();
    assert_eq!(removed.len(), PLUGIN_BINARIES.len() + 2);
    let left: Vec<_> = fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("bridge")]);
    assert!(!conf.join(WEFT_CONFLIST).exists());
    assert!(conf.join("99-other.conflist").exists());
    assert!(uninstall(&dest, &conf, PLUGIN_BINARIES).unwrap().is_empty());
}

#[test]
fn the_binary_installs_and_uninstalls() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dest, conf) = (
        tmp.path().join("src"),
        tmp.path().join("bin"),
        tmp.path().join("net.d"),
    );
    source_with(&src, b"v1");
    let exe = env!("CARGO_BIN_EXE_weft-install-cni");
    let run = |extra: &[&str]| {
        Command::new(exe)
            .arg("--source-dir")
            .arg(&src)
            .arg("--cni-bin-dir")
            .arg(&dest)
            .arg("--cni-conf-dir")
            .arg(&conf)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("installed"));
    assert!(dest.join("weft-portmap").is_file());
    let out = run(&["--uninstall"]);
    assert!(out.status.success(), "{out:?}");
    assert!(!dest.join("weft-portmap").exists());
}
