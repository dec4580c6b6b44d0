//! Links the plugin binaries (`weft`, `weft-ipam`) statically and without PIE.
//!
//! A CNI plugin is a process per pod: the runtime pays its start-up on every ADD and DEL.
//! Dynamic loading (ld.so mapping libc and libgcc_s, binding every symbol up front because
//! of `-z now`, relocating a PIE) costs about 0.6 ms of a 1.1 ms start on the bench machine;
//! a static non-PIE binary starts in about 0.45 ms.
//!
//! `-C target-feature=+crt-static` would do this, but only as a global RUSTFLAG, which also
//! reaches proc-macro crates and breaks them. Build scripts can only add linker arguments,
//! and rustc still asks for `-Bdynamic -lgcc_s -lc ...` for the std it links. So the bins get
//! `-static -no-pie` plus a search directory in which `libgcc_s.so`, `libc.so`, ... are
//! linker scripts naming the static archives (what crt-static links instead). Only the
//! bins see that directory (`rustc-link-arg-bins`); tests and dependants link as usual.
//! Without the static archives (no libc6-dev) the bins stay dynamic, with a warning.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Libraries rustc's std asks for on linux-gnu, and the archive replacing each.
const SHADOWED: &[(&str, &str)] = &[
    ("gcc_s", "libgcc_eh.a"),
    ("c", "libc.a"),
    ("m", "libm.a"),
    ("pthread", "libpthread.a"),
    ("dl", "libdl.a"),
    ("rt", "librt.a"),
    ("util", "libutil.a"),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=WEFT_DYNAMIC_PLUGINS");
    let target = std::env::var("TARGET").unwrap_or_default();
    if !target.ends_with("-linux-gnu") || std::env::var_os("WEFT_DYNAMIC_PLUGINS").is_some() {
        return;
    }
    let Some(out_dir) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let dir = out_dir.join("static-libs");
    match write_shadow_libs(&dir) {
        Ok(()) => {
            println!("cargo:rustc-link-arg-bins=-static");
            println!("cargo:rustc-link-arg-bins=-no-pie");
            println!("cargo:rustc-link-arg-bins=-L{}", dir.display());
        }
        Err(why) => println!("cargo:warning=plugin binaries stay dynamically linked: {why}"),
    }
}

/// Writes one linker script per shadowed library into `dir`.
fn write_shadow_libs(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (lib, archive) in SHADOWED {
        let path = archive_path(archive)?;
        let script = format!("INPUT({})\n", path.display());
        let file = dir.join(format!("lib{lib}.so"));
        std::fs::write(&file, script).map_err(|e| format!("{}: {e}", file.display()))?;
    }
    Ok(())
}

/// Asks the C compiler driver where an archive lives; it echoes the bare name when it
/// does not know it.
fn archive_path(name: &str) -> Result<PathBuf, String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let out = Command::new(&cc)
        .arg(format!("-print-file-name={name}"))
        .output()
        .map_err(|e| format!("running {cc}: {e}"))?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if path.is_absolute() && path.is_file() {
        Ok(path)
    } else {
        Err(format!("{name} not found (install libc6-dev)"))
    }
}
