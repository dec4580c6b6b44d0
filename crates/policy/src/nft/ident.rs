//! nft identifiers. Bare words that are nft keywords (`fwd`, `ip`, `meta`, ...) break the
//! parser, so every name weft emits starts with `wp_` and uses only `[a-z0-9_]`.

use std::fmt;

/// Longest name we emit; kernels before 5.x limited set names to 32 bytes with the NUL.
const MAX_LEN: usize = 31;

/// A validated nft identifier (`wp_[a-z0-9_]+`, at most 31 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(String);

/// A rejected identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid nft identifier {0:?}: must be wp_[a-z0-9_]+, at most 31 bytes")]
pub struct IdentError(pub String);

impl Ident {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Self, IdentError> {
        let ok = name.len() <= MAX_LEN
            && name.len() > 3
            && name.starts_with("wp_")
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(Self(name.to_string()))
        } else {
            Err(IdentError(name.to_string()))
        }
    }

    /// `wp_<kind>_<16 hex digits>`; `kind` is one of our fixed short tags, so the result is
    /// always valid (checked by a test for every tag used).
    pub(crate) fn hashed(kind: &'static str, hash: u64) -> Self {
        Self(format!("wp_{kind}_{hash:016x}"))
    }

    /// One of the fixed names (`wp_forward`, `wp_node4`, ...).
    pub(crate) fn fixed(name: &'static str) -> Self {
        Self(name.to_string())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// FNV-1a, 64 bit: stable across runs and Rust versions (unlike `DefaultHasher`), which
/// names derived from content need.
pub(crate) fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
