//! Every CNI error code weft emits, in one place.
//!
//! Codes 0-99 are reserved by the CNI spec ("Error" section); 100 and above are free
//! for plugin use and are weft's own. Keep this the single source: plugin crates map
//! their typed errors onto these constants at the process edge.

/// Incompatible CNI version: unsupported `cniVersion`, CHECK below 0.4.0, GC/STATUS below 1.1.0.
pub const INCOMPATIBLE_VERSION: u32 = 1;
/// Unsupported field in the network configuration; the message must name key and value.
pub const UNSUPPORTED_FIELD: u32 = 2;
/// Container unknown or does not exist; the runtime need not run DEL afterwards.
pub const UNKNOWN_CONTAINER: u32 = 3;
/// Invalid or missing `CNI_*` environment variable; the message must name it.
pub const INVALID_ENV: u32 = 4;
/// I/O failure, e.g. reading stdin.
pub const IO_FAILURE: u32 = 5;
/// Failed to decode content: invalid JSON or a field of the wrong type.
pub const DECODE_FAILURE: u32 = 6;
/// Invalid network configuration: validation failed (e.g. missing or bad `name`).
pub const INVALID_CONFIG: u32 = 7;
/// Invalid network namespace (a libcni constant, not in the spec table).
pub const INVALID_NETNS: u32 = 8;
/// Transient failure; the runtime may retry later (lock timeout, agent starting).
pub const TRY_AGAIN_LATER: u32 = 11;
/// STATUS: the plugin is not available to serve ADD requests.
pub const NOT_AVAILABLE: u32 = 50;
/// STATUS: not available, and existing containers may be impaired.
pub const NOT_AVAILABLE_IMPAIRED: u32 = 51;

/// weft: the address pool (range set) has no free address left.
pub const POOL_EXHAUSTED: u32 = 100;
/// weft: a netlink request failed.
pub const NETLINK_FAILURE: u32 = 101;
/// weft: applying an nftables batch failed.
pub const NFTABLES_FAILURE: u32 = 102;
/// weft: the IPAM reservation store failed (lock, read or write).
pub const IPAM_STORE_FAILURE: u32 = 103;
/// weft: a delegated plugin (e.g. IPAM) failed or was not found in `CNI_PATH`.
pub const DELEGATE_FAILED: u32 = 104;
/// weft: CHECK found state that does not match `prevResult` or the configuration.
pub const CHECK_MISMATCH: u32 = 105;
/// weft: entering or opening the network namespace failed.
pub const NETNS_FAILURE: u32 = 106;
/// weft: reading or writing a sysctl failed.
pub const SYSCTL_FAILURE: u32 = 107;
/// weft: the interface to create already exists (ADD "MUST fail" in that case).
pub const INTERFACE_EXISTS: u32 = 108;
/// weft: a requested address is taken, is the gateway or lies in no configured range.
pub const ADDRESS_UNAVAILABLE: u32 = 109;
/// Internal error (the Go reference's `ErrInternal`); also used by the panic hook.
pub const INTERNAL: u32 = 999;

/// All codes above with a short description, in ascending order.
pub const ALL: &[(u32, &str)] = &[
    (INCOMPATIBLE_VERSION, "incompatible CNI version"),
    (
        UNSUPPORTED_FIELD,
        "unsupported field in network configuration",
    ),
    (UNKNOWN_CONTAINER, "container unknown or does not exist"),
    (INVALID_ENV, "invalid necessary environment variables"),
    (IO_FAILURE, "I/O failure"),
    (DECODE_FAILURE, "failed to decode content"),
    (INVALID_CONFIG, "invalid network config"),
    (INVALID_NETNS, "invalid network namespace"),
    (TRY_AGAIN_LATER, "try again later"),
    (NOT_AVAILABLE, "plugin not available"),
    (
        NOT_AVAILABLE_IMPAIRED,
        "plugin not available, existing containers may be impaired",
    ),
    (POOL_EXHAUSTED, "address pool exhausted"),
    (NETLINK_FAILURE, "netlink failure"),
    (NFTABLES_FAILURE, "nftables failure"),
    (IPAM_STORE_FAILURE, "IPAM store failure"),
    (DELEGATE_FAILED, "delegated plugin failed or not found"),
    (CHECK_MISMATCH, "CHECK found a mismatch"),
    (NETNS_FAILURE, "network namespace failure"),
    (SYSCTL_FAILURE, "sysctl failure"),
    (INTERFACE_EXISTS, "interface already exists"),
    (ADDRESS_UNAVAILABLE, "requested address unavailable"),
    (INTERNAL, "internal error"),
];

/// Short description of a known code, `None` for codes weft never emits.
pub fn describe(code: u32) -> Option<&'static str> {
    ALL.iter().find(|(c, _)| *c == code).map(|(_, d)| *d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_sorted_and_unique() {
        assert!(ALL.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn own_codes_start_at_100() {
        for (code, _) in ALL {
            assert!(*code < 100 || *code >= POOL_EXHAUSTED, "{code}");
        }
        assert_eq!(describe(DECODE_FAILURE), Some("failed to decode content"));
        assert_eq!(describe(12), None);
    }
}
