//! Ethernet MAC address with the usual `aa:bb:cc:dd:ee:ff` text form (also in JSON).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A 48-bit Ethernet MAC address, serialized as lowercase `aa:bb:cc:dd:ee:ff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

/// A string that is not `xx:xx:xx:xx:xx:xx` with hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hex octets like 02:42:ac:11:00:02")]
pub struct MacParseError(pub String);

impl MacAddr {
    /// The octets.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError(s.to_string());
        let mut octets = [0u8; 6];
        let mut parts = s.split(':');
        for slot in octets.iter_mut() {
            let part = parts.next().ok_or_else(err)?;
            if part.len() != 2 {
                return Err(err());
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(octets))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m: MacAddr = "02:AA:0b:00:ff:10".parse().unwrap();
        assert_eq!(m.0, [2, 0xaa, 0x0b, 0, 0xff, 0x10]);
        assert_eq!(m.to_string(), "02:aa:0b:00:ff:10");
        let j = serde_json::to_string(&m).unwrap();
        assert_eq!(j, "\"02:aa:0b:00:ff:10\"");
        assert_eq!(serde_json::from_str::<MacAddr>(&j).unwrap(), m);
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "02:aa",
            "02:aa:0b:00:ff:10:11",
            "2:aa:0b:00:ff:10",
            "zz:aa:0b:00:ff:10",
        ] {
            assert!(s.parse::<MacAddr>().is_err(), "{s}");
        }
        assert!(serde_json::from_str::<MacAddr>("\"nope\"").is_err());
    }
}
