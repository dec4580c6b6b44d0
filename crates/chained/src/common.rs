//! Helpers every chained plugin shares: the pod namespace and the required `prevResult`.

use weft_datapath::NetnsFd;
use weft_plugin::{PluginError, Request};
use weft_proto::{CniError, CniResult, codes};

/// Opens `CNI_NETNS` (required on ADD and CHECK).
pub fn open_pod_ns(req: &Request) -> Result<NetnsFd, PluginError> {
    let path = req
        .env
        .netns
        .as_ref()
        .ok_or_else(|| PluginError::Cni(CniError::invalid_env("CNI_NETNS is required")))?;
    NetnsFd::open(path).map_err(|e| {
        PluginError::Cni(CniError::new(
            codes::INVALID_NETNS,
            format!("CNI_NETNS {}: {e}", path.display()),
        ))
    })
}

/// Opens `CNI_NETNS` on DEL: `None` when it is empty or already gone.
pub fn open_pod_ns_if_any(req: &Request) -> Option<NetnsFd> {
    let path = req.env.netns.as_ref()?;
    if path.as_os_str().is_empty() {
        return None;
    }
    NetnsFd::open(path).ok()
}

/// The `prevResult` a chained plugin needs on ADD and CHECK (reference: error without it).
pub fn required_prev_result(req: &Request, plugin: &str) -> Result<CniResult, PluginError> {
    req.conf
        .prev_result(req.version)?
        .ok_or_else(|| PluginError::config(format!("{plugin}: prevResult is required")))
}

/// The `CNI_NETNS` path as it appears in result `sandbox` fields.
pub fn netns_text(req: &Request) -> String {
    req.env
        .netns
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// 64-bit FNV-1a over `parts` (each followed by a NUL): stable short names for kernel
/// objects without a hashing dependency. Not a security boundary.
pub fn fnv64(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0u8)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}
