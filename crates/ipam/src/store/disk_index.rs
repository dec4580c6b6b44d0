//! The holder index of the disk store: per attachment, the addresses it may hold.
//!
//! Why: host-local's layout maps address → holder only, so "what does (id, ifname) hold?"
//! (asked by every ADD to stay idempotent) means reading every address file; on a nearly
//! full /16 that is 65,000 reads per ADD. The index answers it with one read.
//!
//! It is only ever a superset hint, never the truth: an entry is added *before* the
//! address is linked and removed after the address file is gone, and every entry is
//! verified against the address file's content before use. So a crash can only leave
//! stale entries (pruned by GC), never a reservation the index misses. DEL and GC do not
//! use the index; they scan the directory like host-local.
//!
//! Index files live in the subdirectory `.weft-holders/` (so scanning the address
//! directory does not see them) and are named `.weft-holder.<hex id>.<hex ifname>`:
//! built from hex digits only, so they cannot escape it. host-local ignores them (their
//! content never equals `<id>\r\n<ifname>`). `.weft-holders/.weft-holder-index-v1` marks
//! a directory whose existing reservations have been indexed (host-local data is
//! indexed once, on first use).

use std::collections::BTreeSet;
use std::net::IpAddr;

/// Subdirectory holding the index files.
pub const INDEX_DIR: &str = ".weft-holders";
/// Prefix of index files.
pub const INDEX_PREFIX: &str = ".weft-holder.";
/// Marker: every reservation in the directory is covered by an index file.
pub const INDEX_MARKER: &str = ".weft-holder-index-v1";
/// Longest file name most Linux file systems accept.
const MAX_NAME_LEN: usize = 255;

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// The index file name of (`id`, `ifname`), or `None` when it would be too long (the
/// store then falls back to a directory scan).
pub fn index_name(id: &str, ifname: &str) -> Option<String> {
    let name = format!("{INDEX_PREFIX}{}.{}", hex(id), hex(ifname));
    (name.len() <= MAX_NAME_LEN).then_some(name)
}

/// The attachment an index file name stands for.
pub fn parse_index_name(name: &str) -> Option<(String, String)> {
    let rest = name.strip_prefix(INDEX_PREFIX)?;
    let (id, ifname) = rest.split_once('.')?;
    Some((unhex(id)?, unhex(ifname)?))
}

/// Parses index content: one address per line; junk lines are skipped (it is a hint).
pub fn parse_entries(text: &str) -> BTreeSet<IpAddr> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Renders index content.
pub fn render_entries(entries: &BTreeSet<IpAddr>) -> String {
    entries.iter().map(|ip| format!("{ip}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_stay_plain() {
        let name = index_name("abc-1.x_y", "eth0").unwrap();
        assert!(
            name[INDEX_PREFIX.len()..]
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == '.')
        );
        assert_eq!(
            parse_index_name(&name),
            Some(("abc-1.x_y".to_string(), "eth0".to_string()))
        );
        assert_eq!(index_name(&"a".repeat(200), "eth0"), None);
        assert_eq!(parse_index_name(".weft-holder.zz.00"), None);
        assert_eq!(parse_index_name("10.1.2.3"), None);
    }

    #[test]
    fn entries_round_trip() {
        let set: BTreeSet<IpAddr> =
            ["10.0.0.2".parse().unwrap(), "2001:db8::2".parse().unwrap()].into();
        assert_eq!(parse_entries(&render_entries(&set)), set);
        assert!(parse_entries("junk\n").is_empty());
    }
}
