//! Serde structs with the spec's field names, one module per result wire format.
//! They are converted to and from [`crate::CniResult`] by explicit `From`/`TryFrom`.

use serde::{Deserialize, Deserializer};

pub mod v02;
pub mod v04;
pub mod v1;

/// Deserializes JSON `null` as `T::default()`: Go writes `null` for nil slices.
pub(crate) fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Go `omitempty` ints: 0 and absent mean the same, so read 0 as `None`.
pub(crate) fn nonzero(v: Option<u32>) -> Option<u32> {
    v.filter(|n| *n != 0)
}

/// Go `omitempty` strings: empty and absent mean the same.
pub(crate) fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}
