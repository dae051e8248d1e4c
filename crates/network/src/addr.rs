//! IPv4 prefixes (`10.210.1.0/24`) with the arithmetic IPAM needs.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An IPv4 address with a prefix length. The address may have host bits set (an interface
/// address such as `10.210.1.1/24`); [`Ipv4Net::network`] masks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Net> {
        (prefix <= 32).then_some(Ipv4Net { addr, prefix })
    }

    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix as u32)
        }
    }

    /// The first address (host bits cleared).
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The last address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// The prefix with host bits cleared.
    pub fn trunc(&self) -> Ipv4Net {
        Ipv4Net {
            addr: self.network(),
            prefix: self.prefix,
        }
    }

    pub fn is_canonical(&self) -> bool {
        self.addr == self.network()
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.network())
    }

    /// Whether the two prefixes share any address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.contains(other.network()) || other.contains(self.network())
    }

    /// Number of addresses in the prefix.
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix as u32)
    }

    /// The `n`th address of the prefix (0 = the network address).
    pub fn nth(&self, n: u64) -> Option<Ipv4Addr> {
        (n < self.size()).then(|| Ipv4Addr::from(u32::from(self.network()) + n as u32))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadNet(pub String);

impl fmt::Display for BadNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid CIDR address: {}", self.0)
    }
}

impl std::error::Error for BadNet {}

impl FromStr for Ipv4Net {
    type Err = BadNet;
    /// Go's `net.ParseCIDR` for IPv4: `a.b.c.d/n`, no leading zeros beyond one digit.
    fn from_str(s: &str) -> Result<Ipv4Net, BadNet> {
        let bad = || BadNet(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        let addr = parse_ipv4(a).ok_or_else(bad)?;
        Ipv4Net::new(addr, prefix).ok_or_else(bad)
    }
}

/// A strict dotted-quad parser (no leading zeros, as Go's `netip`).
pub fn parse_ipv4(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut b = [0u8; 4];
    for (i, p) in parts.iter().enumerate() {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        if p.len() > 1 && p.starts_with('0') {
            return None;
        }
        b[i] = p.parse().ok()?;
    }
    Some(Ipv4Addr::from(b))
}

impl Serialize for Ipv4Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ipv4Net, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_math() {
        let n: Ipv4Net = "10.210.1.0/24".parse().unwrap();
        assert!(n.is_canonical());
        assert_eq!(n.broadcast(), Ipv4Addr::new(10, 210, 1, 255));
        assert!(n.contains(Ipv4Addr::new(10, 210, 1, 77)));
        assert!(!n.contains(Ipv4Addr::new(10, 210, 2, 1)));
        assert_eq!(n.size(), 256);
        assert_eq!(n.nth(1), Some(Ipv4Addr::new(10, 210, 1, 1)));
        assert_eq!(n.nth(256), None);
        let big: Ipv4Net = "10.210.0.0/16".parse().unwrap();
        assert!(big.overlaps(&n) && n.overlaps(&big));
        let other: Ipv4Net = "10.210.2.0/24".parse().unwrap();
        assert!(!other.overlaps(&n));
        let host: Ipv4Net = "10.210.1.5/24".parse().unwrap();
        assert!(!host.is_canonical());
        assert_eq!(host.trunc(), n);
        assert_eq!("0.0.0.0/0".parse::<Ipv4Net>().unwrap().mask(), 0);
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "10.0.0.0",
            "10.0.0.256/8",
            "x/8",
            "10.0.0.01/8",
            "10.0.0.0/",
        ] {
            assert!(bad.parse::<Ipv4Net>().is_err(), "{bad}");
        }
        assert_eq!(n.to_string(), "10.210.1.0/24");
    }
}
