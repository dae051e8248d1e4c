//! A small synchronous rtnetlink client: links (bridges, veth pairs), addresses and routes.
//!
//! A netlink socket belongs to the network namespace it was opened in; open one from a
//! thread inside a container's namespace (see [`crate::netns`]) to configure that namespace.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::addr::Ipv4Net;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_MULTI: u16 = 2;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;

const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;

const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;

const AF_UNSPEC: u8 = 0;
const AF_INET: u8 = 2;
const IFF_UP: u32 = 1;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RTN_UNICAST: u8 = 1;

/// A link as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub kind: Option<String>,
    pub master: Option<u32>,
    pub up: bool,
}

/// A netlink message under construction: header, fixed part, attributes (with nesting).
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(kind: u16, flags: u16) -> Msg {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&[0u8; 4]); // length, set in finish
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&[0u8; 8]); // seq, pid
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    fn raw(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    fn ifinfo(&mut self, family: u8, index: i32, flags: u32, change: u32) -> &mut Self {
        let mut b = [0u8; 16];
        b[0] = family;
        b[4..8].copy_from_slice(&index.to_ne_bytes());
        b[8..12].copy_from_slice(&flags.to_ne_bytes());
        b[12..16].copy_from_slice(&change.to_ne_bytes());
        self.raw(&b)
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Self {
        self.pad();
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    fn attr_str(&mut self, kind: u16, s: &str) -> &mut Self {
        let mut d = s.as_bytes().to_vec();
        d.push(0);
        self.attr(kind, &d)
    }

    fn attr_u32(&mut self, kind: u16, v: u32) -> &mut Self {
        self.attr(kind, &v.to_ne_bytes())
    }

    fn begin(&mut self, kind: u16) -> &mut Self {
        self.pad();
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    fn end(&mut self) -> &mut Self {
        let start = self.nests.pop().expect("balanced nests");
        self.pad();
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    fn finish(&mut self, seq: u32) -> &[u8] {
        self.pad();
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        &self.buf
    }
}

/// Iterates `(type, payload)` over the attributes in `b`.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let data = &b[4..len];
        let adv = (len + 3) & !3;
        b = if adv >= b.len() { &[] } else { &b[adv..] };
        Some((kind, data))
    })
}

fn cstr(d: &[u8]) -> String {
    let end = d.iter().position(|&c| c == 0).unwrap_or(d.len());
    String::from_utf8_lossy(&d[..end]).into_owned()
}

fn u32_of(d: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(d.get(..4)?.try_into().ok()?))
}

fn ipv4_of(d: &[u8]) -> Option<Ipv4Addr> {
    let b: [u8; 4] = d.get(..4)?.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// Opens a route netlink socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Netlink> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a zeroed sockaddr_nl is a valid "kernel assigns the port" address.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: sa lives across the call; its size is passed.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        // Connected to the kernel (port 0), so plain send/recv work.
        // SAFETY: as above.
        let r = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Netlink {
            fd,
            seq: 0,
            buf: vec![0u8; 64 * 1024],
        })
    }

    fn send(&mut self, m: &mut Msg) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let b = m.finish(seq);
        // SAFETY: b is a valid buffer of the given length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), b.as_ptr().cast(), b.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(seq)
    }

    fn recv(&mut self) -> io::Result<usize> {
        loop {
            // SAFETY: buf is ours and writable for its length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            return Ok(n as usize);
        }
    }

    /// Sends a request and waits for its acknowledgement.
    fn request(&mut self, m: &mut Msg) -> io::Result<()> {
        let seq = self.send(m)?;
        loop {
            let n = self.recv()?;
            let mut off = 0;
            while off + 16 <= n {
                let b = &self.buf[off..n];
                let len = u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize;
                let kind = u16::from_ne_bytes([b[4], b[5]]);
                let mseq = u32::from_ne_bytes(b[8..12].try_into().unwrap());
                if len < 16 || len > b.len() {
                    return Err(io::Error::other("malformed netlink answer"));
                }
                if mseq == seq && kind == NLMSG_ERROR {
                    let code = i32::from_ne_bytes(b[16..20].try_into().unwrap());
                    return if code == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::from_raw_os_error(-code))
                    };
                }
                off += (len + 3) & !3;
            }
        }
    }

    /// Sends a dump request; returns the payload (after the netlink header) of each answer.
    fn dump(&mut self, m: &mut Msg) -> io::Result<Vec<Vec<u8>>> {
        let seq = self.send(m)?;
        let mut out = Vec::new();
        loop {
            let n = self.recv()?;
            let mut off = 0;
            while off + 16 <= n {
                let b = &self.buf[off..n];
                let len = u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize;
                let kind = u16::from_ne_bytes([b[4], b[5]]);
                let flags = u16::from_ne_bytes([b[6], b[7]]);
                let mseq = u32::from_ne_bytes(b[8..12].try_into().unwrap());
                if len < 16 || len > b.len() {
                    return Err(io::Error::other("malformed netlink answer"));
                }
                if mseq == seq {
                    match kind {
                        NLMSG_DONE => return Ok(out),
                        NLMSG_ERROR => {
                            let code = i32::from_ne_bytes(b[16..20].try_into().unwrap());
                            if code != 0 {
                                return Err(io::Error::from_raw_os_error(-code));
                            }
                            return Ok(out);
                        }
                        _ => out.push(b[16..len].to_vec()),
                    }
                    if flags & NLM_F_MULTI == 0 {
                        return Ok(out);
                    }
                }
                off += (len + 3) & !3;
            }
        }
    }

    /// All links of the namespace.
    pub fn links(&mut self) -> io::Result<Vec<Link>> {
        let mut m = Msg::new(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP);
        m.ifinfo(AF_UNSPEC, 0, 0, 0);
        let msgs = self.dump(&mut m)?;
        Ok(msgs.iter().filter_map(|p| parse_link(p)).collect())
    }

    /// The link called `name`, if it exists.
    pub fn link(&mut self, name: &str) -> io::Result<Option<Link>> {
        let mut m = Msg::new(RTM_GETLINK, NLM_F_REQUEST);
        m.ifinfo(AF_UNSPEC, 0, 0, 0).attr_str(IFLA_IFNAME, name);
        match self.dump(&mut m) {
            Ok(msgs) => Ok(msgs.iter().find_map(|p| parse_link(p))),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a Linux bridge, up.
    pub fn create_bridge(&mut self, name: &str, mtu: Option<u32>) -> io::Result<()> {
        let mut m = Msg::new(
            RTM_NEWLINK,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        );
        m.ifinfo(AF_UNSPEC, 0, IFF_UP, IFF_UP)
            .attr_str(IFLA_IFNAME, name);
        if let Some(mtu) = mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        m.begin(IFLA_LINKINFO)
            .attr_str(IFLA_INFO_KIND, "bridge")
            .end();
        self.request(&mut m)
    }

    /// Brings a link up.
    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK);
        m.ifinfo(AF_UNSPEC, index as i32, IFF_UP, IFF_UP);
        self.request(&mut m)
    }

    /// Creates a veth pair: `host` (up, enslaved to `master`) in this namespace and `peer`
    /// (down, with `peer_mac`) in the namespace `peer_ns` refers to.
    pub fn create_veth(
        &mut self,
        host: &str,
        master: u32,
        peer: &str,
        peer_ns: RawFd,
        peer_mac: Option<[u8; 6]>,
        mtu: Option<u32>,
    ) -> io::Result<()> {
        let mut m = Msg::new(
            RTM_NEWLINK,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        );
        m.ifinfo(AF_UNSPEC, 0, IFF_UP, IFF_UP)
            .attr_str(IFLA_IFNAME, host)
            .attr_u32(IFLA_MASTER, master);
        if let Some(mtu) = mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        m.begin(IFLA_LINKINFO)
            .attr_str(IFLA_INFO_KIND, "veth")
            .begin(IFLA_INFO_DATA)
            .begin(VETH_INFO_PEER)
            // Not IFF_UP: the kernel configures the peer before the pair is linked, and
            // opening a veth without its peer fails (ENOTCONN). Bring it up afterwards.
            .ifinfo(AF_UNSPEC, 0, 0, 0)
            .attr_str(IFLA_IFNAME, peer)
            .attr_u32(IFLA_NET_NS_FD, peer_ns as u32);
        if let Some(mac) = peer_mac {
            m.attr(IFLA_ADDRESS, &mac);
        }
        if let Some(mtu) = mtu {
            m.attr_u32(IFLA_MTU, mtu);
        }
        m.end().end().end();
        self.request(&mut m)
    }

    pub fn delete_link(&mut self, name: &str) -> io::Result<()> {
        let mut m = Msg::new(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK);
        m.ifinfo(AF_UNSPEC, 0, 0, 0).attr_str(IFLA_IFNAME, name);
        self.request(&mut m)
    }

    fn addr_msg(kind: u16, flags: u16, index: u32, a: Ipv4Net) -> Msg {
        let mut m = Msg::new(kind, flags);
        let mut hdr = [0u8; 8];
        hdr[0] = AF_INET;
        hdr[1] = a.prefix;
        hdr[3] = RT_SCOPE_UNIVERSE;
        hdr[4..8].copy_from_slice(&index.to_ne_bytes());
        m.raw(&hdr)
            .attr(IFA_LOCAL, &a.addr.octets())
            .attr(IFA_ADDRESS, &a.addr.octets());
        if a.prefix < 31 {
            m.attr(IFA_BROADCAST, &a.broadcast().octets());
        }
        m
    }

    /// Adds an IPv4 address to a link.
    pub fn add_addr(&mut self, index: u32, a: Ipv4Net) -> io::Result<()> {
        let mut m = Self::addr_msg(
            RTM_NEWADDR,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            index,
            a,
        );
        self.request(&mut m)
    }

    pub fn del_addr(&mut self, index: u32, a: Ipv4Net) -> io::Result<()> {
        let mut m = Self::addr_msg(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, index, a);
        self.request(&mut m)
    }

    /// Every IPv4 address: (link index, address/prefix).
    pub fn addrs(&mut self) -> io::Result<Vec<(u32, Ipv4Net)>> {
        let mut m = Msg::new(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP);
        m.raw(&[AF_INET, 0, 0, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        for p in self.dump(&mut m)? {
            if p.len() < 8 || p[0] != AF_INET {
                continue;
            }
            let prefix = p[1];
            let index = u32::from_ne_bytes(p[4..8].try_into().unwrap());
            let mut local = None;
            let mut address = None;
            for (k, d) in attrs(&p[8..]) {
                match k {
                    IFA_LOCAL => local = ipv4_of(d),
                    IFA_ADDRESS => address = ipv4_of(d),
                    _ => {}
                }
            }
            if let Some(ip) = local.or(address)
                && let Some(n) = Ipv4Net::new(ip, prefix)
            {
                out.push((index, n));
            }
        }
        Ok(out)
    }

    /// Adds a route in the main table: `dst` (None = default) via `gw` out of `oif`.
    pub fn add_route(
        &mut self,
        dst: Option<Ipv4Net>,
        gw: Option<Ipv4Addr>,
        oif: u32,
    ) -> io::Result<()> {
        let mut m = Msg::new(
            RTM_NEWROUTE,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        );
        let scope = if gw.is_some() || dst.is_none() {
            RT_SCOPE_UNIVERSE
        } else {
            253 // RT_SCOPE_LINK
        };
        let dst_len = dst.map(|d| d.prefix).unwrap_or(0);
        m.raw(&[
            AF_INET,
            dst_len,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            scope,
            RTN_UNICAST,
            0,
            0,
            0,
            0,
        ]);
        if let Some(d) = dst {
            m.attr(RTA_DST, &d.network().octets());
        }
        if let Some(g) = gw {
            m.attr(RTA_GATEWAY, &g.octets());
        }
        m.attr_u32(RTA_OIF, oif);
        self.request(&mut m)
    }

    /// Destinations of the main table's routes (default routes left out), with their
    /// outgoing link.
    pub fn routes(&mut self) -> io::Result<Vec<(Ipv4Net, Option<u32>)>> {
        let mut m = Msg::new(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP);
        m.raw(&[AF_INET, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        for p in self.dump(&mut m)? {
            if p.len() < 12 || p[0] != AF_INET {
                continue;
            }
            let dst_len = p[1];
            let mut table = p[4] as u32;
            let kind = p[7];
            let mut dst = None;
            let mut oif = None;
            for (k, d) in attrs(&p[12..]) {
                match k {
                    RTA_DST => dst = ipv4_of(d),
                    RTA_OIF => oif = u32_of(d),
                    RTA_TABLE => table = u32_of(d).unwrap_or(table),
                    _ => {}
                }
            }
            if table != RT_TABLE_MAIN as u32 || kind != RTN_UNICAST || dst_len == 0 {
                continue;
            }
            if let Some(d) = dst.and_then(|d| Ipv4Net::new(d, dst_len)) {
                out.push((d, oif));
            }
        }
        Ok(out)
    }
}

fn parse_link(p: &[u8]) -> Option<Link> {
    if p.len() < 16 {
        return None;
    }
    let index = i32::from_ne_bytes(p[4..8].try_into().ok()?) as u32;
    let flags = u32::from_ne_bytes(p[8..12].try_into().ok()?);
    let mut l = Link {
        index,
        name: String::new(),
        kind: None,
        master: None,
        up: flags & IFF_UP != 0,
    };
    for (k, d) in attrs(&p[16..]) {
        match k {
            IFLA_IFNAME => l.name = cstr(d),
            IFLA_MASTER => l.master = u32_of(d),
            IFLA_LINKINFO => {
                for (k2, d2) in attrs(d) {
                    if k2 == IFLA_INFO_KIND {
                        l.kind = Some(cstr(d2));
                    }
                }
            }
            _ => {}
        }
    }
    Some(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_aligned_and_nested() {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_REQUEST);
        m.ifinfo(0, 0, 0, 0)
            .attr_str(IFLA_IFNAME, "abc")
            .begin(IFLA_LINKINFO)
            .attr_str(IFLA_INFO_KIND, "veth")
            .end();
        let b = m.finish(7).to_vec();
        assert_eq!(b.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
        let found: Vec<(u16, Vec<u8>)> = attrs(&b[32..]).map(|(k, d)| (k, d.to_vec())).collect();
        assert_eq!(found[0].0, IFLA_IFNAME);
        assert_eq!(cstr(&found[0].1), "abc");
        assert_eq!(found[1].0, IFLA_LINKINFO);
        let inner: Vec<(u16, Vec<u8>)> = attrs(&found[1].1).map(|(k, d)| (k, d.to_vec())).collect();
        assert_eq!(cstr(&inner[0].1), "veth");
    }
}
