//! IP address management: address pools for subnets (`default-address-pools`) and the
//! allocation of addresses inside a network's subnets (sequential, like docker's allocator,
//! so a just-released address is not handed out again at once).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::addr::Ipv4Net;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpamError {
    #[error("Address already in use")]
    InUse,
    #[error("requested address is out of range")]
    OutOfRange,
    #[error("No available addresses on this pool")]
    Exhausted,
    #[error(
        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
    )]
    NoPool,
}

/// One `default-address-pools` entry: subnets of `size` bits carved out of `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPool {
    pub base: Ipv4Net,
    pub size: u8,
}

/// docker's defaults: 172.17–172.31 as /16s, then 192.168.0.0/16 as /20s.
pub fn default_pools() -> Vec<AddressPool> {
    let mut v: Vec<AddressPool> = (17..=31)
        .map(|b| AddressPool {
            base: Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).unwrap(),
            size: 16,
        })
        .collect();
    v.push(AddressPool {
        base: Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 16).unwrap(),
        size: 20,
    });
    v
}

/// Parses docker's `base=10.10.0.0/16,size=24`.
pub fn parse_pool(s: &str) -> Result<AddressPool, String> {
    let mut base = None;
    let mut size = None;
    for part in s.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("invalid field: {part}"))?;
        match k.trim() {
            "base" => {
                base = Some(
                    v.trim()
                        .parse::<Ipv4Net>()
                        .map_err(|e| format!("invalid base {v}: {e}"))?,
                )
            }
            "size" => {
                size = Some(
                    v.trim()
                        .parse::<u8>()
                        .ok()
                        .filter(|s| *s <= 32)
                        .ok_or_else(|| format!("invalid size {v}"))?,
                )
            }
            other => return Err(format!("unexpected field: {other}")),
        }
    }
    let base = base.ok_or("address pool requires a base")?;
    let size = size.ok_or("address pool requires a size")?;
    if size < base.prefix {
        return Err(format!(
            "invalid pools configuration: size {size} is smaller than the prefix of base {base}"
        ));
    }
    Ok(AddressPool {
        base: base.trunc(),
        size,
    })
}

/// The first subnet from the pools that overlaps none of `taken`.
pub fn pick_subnet(pools: &[AddressPool], taken: &[Ipv4Net]) -> Result<Ipv4Net, IpamError> {
    for p in pools {
        let count = 1u64 << (p.size - p.base.prefix) as u32;
        let step = 1u64 << (32 - p.size as u32);
        for i in 0..count.min(1 << 16) {
            let start = u32::from(p.base.network()) as u64 + i * step;
            let cand = Ipv4Net::new(Ipv4Addr::from(start as u32), p.size).unwrap();
            if !taken.iter().any(|t| t.overlaps(&cand)) {
                return Ok(cand);
            }
        }
    }
    Err(IpamError::NoPool)
}

/// Addresses of one subnet of a network.
#[derive(Debug, Clone)]
pub struct SubnetAlloc {
    pub subnet: Ipv4Net,
    /// `--ip-range`: dynamic addresses come from here.
    pub range: Option<Ipv4Net>,
    pub gateway: Ipv4Addr,
    used: BTreeSet<u32>,
    last: Option<u32>,
}

impl SubnetAlloc {
    pub fn new(subnet: Ipv4Net, range: Option<Ipv4Net>, gateway: Ipv4Addr) -> SubnetAlloc {
        let mut used = BTreeSet::new();
        used.insert(u32::from(gateway));
        SubnetAlloc {
            subnet: subnet.trunc(),
            range: range.map(|r| r.trunc()),
            gateway,
            used,
            last: None,
        }
    }

    /// The first host address: docker's default gateway.
    pub fn default_gateway(subnet: &Ipv4Net) -> Ipv4Addr {
        if subnet.prefix >= 31 {
            subnet.network()
        } else {
            subnet.nth(1).unwrap()
        }
    }

    fn usable(&self, ip: u32) -> bool {
        let s = &self.subnet;
        if s.prefix < 31 && (ip == u32::from(s.network()) || ip == u32::from(s.broadcast())) {
            return false;
        }
        s.contains(Ipv4Addr::from(ip))
    }

    /// Hands out `want` (a static address anywhere in the subnet) or the next free one.
    pub fn request(&mut self, want: Option<Ipv4Addr>) -> Result<Ipv4Addr, IpamError> {
        if let Some(ip) = want {
            let n = u32::from(ip);
            if !self.usable(n) {
                return Err(IpamError::OutOfRange);
            }
            if !self.used.insert(n) {
                return Err(IpamError::InUse);
            }
            return Ok(ip);
        }
        let pool = self.range.unwrap_or(self.subnet);
        let first = u32::from(pool.network());
        let last = u32::from(pool.broadcast());
        let start = match self.last {
            Some(l) if l >= first && l < last => l + 1,
            _ => first,
        };
        let mut n = start;
        loop {
            if self.usable(n) && !self.used.contains(&n) {
                self.used.insert(n);
                self.last = Some(n);
                return Ok(Ipv4Addr::from(n));
            }
            n = if n >= last { first } else { n + 1 };
            if n == start {
                return Err(IpamError::Exhausted);
            }
        }
    }

    /// Marks an address taken (rebuilding state at start).
    pub fn reserve(&mut self, ip: Ipv4Addr) -> bool {
        self.subnet.contains(ip) && self.used.insert(u32::from(ip))
    }

    pub fn release(&mut self, ip: Ipv4Addr) {
        if ip != self.gateway {
            self.used.remove(&u32::from(ip));
        }
    }

    /// Addresses in use, the gateway excluded.
    pub fn allocated(&self) -> usize {
        self.used.len() - 1
    }
}

/// docker's MAC for an address: 02:42 followed by the IPv4 bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return None;
        }
        m[i] = u8::from_str_radix(p, 16).ok()?;
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn sequential_allocation_skips_gateway_and_wraps() {
        let s = net("10.210.9.0/29");
        let gw = SubnetAlloc::default_gateway(&s);
        assert_eq!(gw, Ipv4Addr::new(10, 210, 9, 1));
        let mut a = SubnetAlloc::new(s, None, gw);
        let got: Vec<Ipv4Addr> = (0..5).map(|_| a.request(None).unwrap()).collect();
        assert_eq!(got[0], Ipv4Addr::new(10, 210, 9, 2));
        assert_eq!(got[4], Ipv4Addr::new(10, 210, 9, 6));
        assert_eq!(a.request(None), Err(IpamError::Exhausted));
        a.release(Ipv4Addr::new(10, 210, 9, 3));
        assert_eq!(a.request(None).unwrap(), Ipv4Addr::new(10, 210, 9, 3));
        a.release(Ipv4Addr::new(10, 210, 9, 4));
        assert_eq!(
            a.request(Some(Ipv4Addr::new(10, 210, 9, 4))).unwrap(),
            Ipv4Addr::new(10, 210, 9, 4)
        );
        assert_eq!(
            a.request(Some(Ipv4Addr::new(10, 210, 9, 4))),
            Err(IpamError::InUse)
        );
        assert_eq!(
            a.request(Some(Ipv4Addr::new(10, 210, 9, 7))),
            Err(IpamError::OutOfRange)
        );
        assert_eq!(
            a.request(Some(Ipv4Addr::new(10, 1, 1, 1))),
            Err(IpamError::OutOfRange)
        );
    }

    #[test]
    fn ranges_and_pools() {
        let s = net("10.210.9.0/24");
        let mut a = SubnetAlloc::new(
            s,
            Some(net("10.210.9.128/25")),
            Ipv4Addr::new(10, 210, 9, 1),
        );
        assert_eq!(a.request(None).unwrap(), Ipv4Addr::new(10, 210, 9, 128));
        // Static addresses may lie outside the range.
        assert!(a.request(Some(Ipv4Addr::new(10, 210, 9, 5))).is_ok());
        let pools = vec![parse_pool("base=10.210.8.0/23,size=24").unwrap()];
        assert_eq!(pick_subnet(&pools, &[]).unwrap(), net("10.210.8.0/24"));
        assert_eq!(
            pick_subnet(&pools, &[net("10.210.8.0/24")]).unwrap(),
            net("10.210.9.0/24")
        );
        assert_eq!(
            pick_subnet(&pools, &[net("10.210.0.0/16")]),
            Err(IpamError::NoPool)
        );
        assert!(parse_pool("base=10.0.0.0/16,size=8").is_err());
        assert_eq!(default_pools()[0].base, net("172.17.0.0/16"));
        assert_eq!(
            format_mac(&mac_for(Ipv4Addr::new(172, 17, 0, 2))),
            "02:42:ac:11:00:02"
        );
        assert_eq!(
            parse_mac("02:42:ac:11:00:02"),
            Some(mac_for(Ipv4Addr::new(172, 17, 0, 2)))
        );
    }
}
