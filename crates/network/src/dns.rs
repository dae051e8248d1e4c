//! The embedded DNS server containers on user-defined networks reach at 127.0.0.11:53.
//!
//! Its sockets are opened inside the container's network namespace; berthd's runtime serves
//! them. Names of containers, aliases and links are answered from the [`Resolver`] (A and
//! PTR); everything else is relayed verbatim to the upstream servers from berthd's own
//! namespace, so upstreams on the host's loopback work too.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

pub const TTL: u32 = 600;
const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_NOTIMP: u8 = 4;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);

/// What the daemon knows about names, from the view of one container.
pub trait Resolver: Send + Sync + 'static {
    /// Addresses for `name` (lower case, no trailing dot); None when the name is not ours.
    fn lookup(&self, name: &str) -> Option<Vec<Ipv4Addr>>;
    /// The name for an address on the container's networks.
    fn reverse(&self, ip: Ipv4Addr) -> Option<String>;
    /// Where other names go; empty means they are not forwarded (internal networks).
    fn upstreams(&self) -> Vec<SocketAddr>;
}

/// The question of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub id: u16,
    pub flags: u16,
    /// Lower case, dotted, no trailing dot (`""` for the root).
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    /// Where the question section ends in the message.
    pub end: usize,
}

/// Why a message could not be read as a query.
#[derive(Debug, PartialEq, Eq)]
pub enum Bad {
    /// Too short or a response: ignore it.
    Drop,
    /// Answer with this rcode.
    Reply(u8),
}

pub fn parse_query(msg: &[u8]) -> Result<Question, Bad> {
    if msg.len() < 12 {
        return Err(Bad::Drop);
    }
    let id = u16::from_be_bytes([msg[0], msg[1]]);
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    if flags & 0x8000 != 0 {
        return Err(Bad::Drop);
    }
    if (flags >> 11) & 0xf != 0 {
        return Err(Bad::Reply(RCODE_NOTIMP));
    }
    let qd = u16::from_be_bytes([msg[4], msg[5]]);
    if qd != 1 {
        return Err(Bad::Reply(RCODE_FORMERR));
    }
    let mut pos = 12;
    let mut labels: Vec<String> = Vec::new();
    let mut total = 0usize;
    loop {
        let len = *msg.get(pos).ok_or(Bad::Reply(RCODE_FORMERR))? as usize;
        pos += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            // Compression pointers have no place in a question's first name.
            return Err(Bad::Reply(RCODE_FORMERR));
        }
        let label = msg.get(pos..pos + len).ok_or(Bad::Reply(RCODE_FORMERR))?;
        total += len + 1;
        if total > 255 {
            return Err(Bad::Reply(RCODE_FORMERR));
        }
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        pos += len;
    }
    let tail = msg.get(pos..pos + 4).ok_or(Bad::Reply(RCODE_FORMERR))?;
    Ok(Question {
        id,
        flags,
        name: labels.join("."),
        qtype: u16::from_be_bytes([tail[0], tail[1]]),
        qclass: u16::from_be_bytes([tail[2], tail[3]]),
        end: pos + 4,
    })
}

/// An answer record's data.
pub enum RData {
    A(Ipv4Addr),
    Ptr(String),
}

fn encode_name(out: &mut Vec<u8>, name: &str) {
    for l in name.split('.').filter(|l| !l.is_empty()) {
        let b = &l.as_bytes()[..l.len().min(63)];
        out.push(b.len() as u8);
        out.extend_from_slice(b);
    }
    out.push(0);
}

/// A response to `q` (whose message is `msg`) with `rcode` and `answers`.
pub fn response(q: &Question, msg: &[u8], rcode: u8, answers: &[RData]) -> Vec<u8> {
    let mut out = Vec::with_capacity(q.end + answers.len() * 32);
    out.extend_from_slice(&q.id.to_be_bytes());
    // QR, the query's opcode and RD, RA; not authoritative (docker's resolver neither).
    let flags: u16 = 0x8000 | (q.flags & 0x7900) | 0x0080 | rcode as u16;
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&msg[12..q.end]);
    for a in answers {
        out.extend_from_slice(&[0xc0, 0x0c]);
        match a {
            RData::A(ip) => {
                out.extend_from_slice(&TYPE_A.to_be_bytes());
                out.extend_from_slice(&CLASS_IN.to_be_bytes());
                out.extend_from_slice(&TTL.to_be_bytes());
                out.extend_from_slice(&4u16.to_be_bytes());
                out.extend_from_slice(&ip.octets());
            }
            RData::Ptr(name) => {
                let mut data = Vec::new();
                encode_name(&mut data, name);
                out.extend_from_slice(&TYPE_PTR.to_be_bytes());
                out.extend_from_slice(&CLASS_IN.to_be_bytes());
                out.extend_from_slice(&TTL.to_be_bytes());
                out.extend_from_slice(&(data.len() as u16).to_be_bytes());
                out.extend_from_slice(&data);
            }
        }
    }
    out
}

/// A bare error answer for a message whose question could not be read.
fn error_response(msg: &[u8], rcode: u8) -> Vec<u8> {
    let mut out = msg[..12].to_vec();
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    let f = 0x8000 | (flags & 0x7900) | 0x0080 | rcode as u16;
    out[2..4].copy_from_slice(&f.to_be_bytes());
    out[4..12].fill(0);
    out
}

/// `4.3.2.1.in-addr.arpa` → 1.2.3.4.
pub fn reverse_name(name: &str) -> Option<Ipv4Addr> {
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let parts: Vec<&str> = rest.split('.').collect();
    if parts.len() != 4 {
        return None;
    }
    let mut b = [0u8; 4];
    for (i, p) in parts.iter().rev().enumerate() {
        b[i] = p.parse().ok()?;
    }
    Some(Ipv4Addr::from(b))
}

/// What to do with a query: an answer made here, or a relay upstream.
pub enum Outcome {
    Answer(Vec<u8>),
    Forward(Vec<SocketAddr>),
    Ignore,
}

/// Decides how to answer `msg`.
pub fn decide(resolver: &dyn Resolver, msg: &[u8]) -> Outcome {
    let q = match parse_query(msg) {
        Ok(q) => q,
        Err(Bad::Drop) => return Outcome::Ignore,
        Err(Bad::Reply(rc)) => return Outcome::Answer(error_response(msg, rc)),
    };
    if q.qclass == CLASS_IN || q.qclass == 255 {
        if q.qtype == TYPE_PTR
            && let Some(ip) = reverse_name(&q.name)
            && let Some(name) = resolver.reverse(ip)
        {
            return Outcome::Answer(response(&q, msg, 0, &[RData::Ptr(name)]));
        }
        if let Some(ips) = resolver.lookup(&q.name) {
            let answers: Vec<RData> = if q.qtype == TYPE_A || q.qtype == 255 {
                ips.into_iter().map(RData::A).collect()
            } else {
                // A known name without records of that type (AAAA, MX…): NODATA.
                let _ = TYPE_AAAA;
                Vec::new()
            };
            return Outcome::Answer(response(&q, msg, 0, &answers));
        }
    }
    let ups = resolver.upstreams();
    if ups.is_empty() {
        return Outcome::Answer(response(&q, msg, RCODE_SERVFAIL, &[]));
    }
    Outcome::Forward(ups)
}

async fn forward_udp(ups: &[SocketAddr], msg: &[u8]) -> Option<Vec<u8>> {
    let id = &msg[..2];
    for up in ups {
        let bind: SocketAddr = if up.is_ipv4() {
            "0.0.0.0:0".parse().unwrap()
        } else {
            "[::]:0".parse().unwrap()
        };
        let Ok(s) = UdpSocket::bind(bind).await else {
            continue;
        };
        if s.connect(up).await.is_err() || s.send(msg).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        let deadline = tokio::time::Instant::now() + UPSTREAM_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, s.recv(&mut buf)).await {
                Ok(Ok(n)) if n >= 12 && &buf[..2] == id => {
                    buf.truncate(n);
                    return Some(buf);
                }
                Ok(Ok(_)) => continue,
                _ => break,
            }
        }
    }
    None
}

async fn forward_tcp(ups: &[SocketAddr], msg: &[u8]) -> Option<Vec<u8>> {
    for up in ups {
        let Ok(Ok(mut s)) = tokio::time::timeout(UPSTREAM_TIMEOUT, TcpStream::connect(up)).await
        else {
            continue;
        };
        let r = tokio::time::timeout(UPSTREAM_TIMEOUT, async {
            s.write_all(&(msg.len() as u16).to_be_bytes()).await?;
            s.write_all(msg).await?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len).await?;
            let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut buf).await?;
            Ok::<_, std::io::Error>(buf)
        })
        .await;
        if let Ok(Ok(buf)) = r {
            return Some(buf);
        }
    }
    None
}

async fn handle(resolver: &dyn Resolver, msg: Vec<u8>, tcp: bool) -> Option<Vec<u8>> {
    match decide(resolver, &msg) {
        Outcome::Ignore => None,
        Outcome::Answer(a) => Some(a),
        Outcome::Forward(ups) => {
            let got = if tcp {
                forward_tcp(&ups, &msg).await
            } else {
                forward_udp(&ups, &msg).await
            };
            Some(got.unwrap_or_else(|| match parse_query(&msg) {
                Ok(q) => response(&q, &msg, RCODE_SERVFAIL, &[]),
                Err(_) => error_response(&msg, RCODE_SERVFAIL),
            }))
        }
    }
}

/// A running server; dropping it stops it and closes its sockets.
pub struct DnsServer {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Serves `udp` and `tcp` (bound to 127.0.0.11:53 inside a container's namespace) on the
/// current tokio runtime. Call from within the runtime (a blocking task is fine).
pub fn serve(
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
    resolver: Arc<dyn Resolver>,
) -> std::io::Result<DnsServer> {
    udp.set_nonblocking(true)?;
    tcp.set_nonblocking(true)?;
    let udp = Arc::new(UdpSocket::from_std(udp)?);
    let tcp = TcpListener::from_std(tcp)?;
    let r = resolver.clone();
    let u = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let msg = buf[..n].to_vec();
            // Local answers go out at once; forwarded ones on their own task.
            match decide(r.as_ref(), &msg) {
                Outcome::Ignore => {}
                Outcome::Answer(a) => {
                    let _ = udp.send_to(&a, peer).await;
                }
                Outcome::Forward(_) => {
                    let (r, udp) = (r.clone(), udp.clone());
                    tokio::spawn(async move {
                        if let Some(a) = handle(r.as_ref(), msg, false).await {
                            let _ = udp.send_to(&a, peer).await;
                        }
                    });
                }
            }
        }
    });
    let r = resolver;
    let t = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = tcp.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let r = r.clone();
            tokio::spawn(async move {
                loop {
                    let mut len = [0u8; 2];
                    let Ok(Ok(_)) =
                        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut len)).await
                    else {
                        return;
                    };
                    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
                    if s.read_exact(&mut msg).await.is_err() {
                        return;
                    }
                    let Some(a) = handle(r.as_ref(), msg, true).await else {
                        return;
                    };
                    if s.write_all(&(a.len() as u16).to_be_bytes()).await.is_err()
                        || s.write_all(&a).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    Ok(DnsServer { tasks: vec![u, t] })
}

/// Builds a query (for tests and the bench).
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&0x0100u16.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    encode_name(&mut m, name);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    m
}

/// Reads the A records and rcode of a response (for tests).
pub fn answers_of(msg: &[u8]) -> Option<(u8, Vec<Ipv4Addr>)> {
    let q = {
        // Parse the echoed question with the query reader (ignoring the QR bit).
        let mut m = msg.to_vec();
        *m.get_mut(2)? &= 0x7f;
        parse_query(&m).ok()?
    };
    let rcode = msg[3] & 0xf;
    let an = u16::from_be_bytes([msg[6], msg[7]]);
    let mut pos = q.end;
    let mut ips = Vec::new();
    for _ in 0..an {
        // Skip the owner name (a pointer or labels).
        loop {
            let l = *msg.get(pos)?;
            if l & 0xc0 == 0xc0 {
                pos += 2;
                break;
            }
            pos += 1 + l as usize;
            if l == 0 {
                break;
            }
        }
        let hdr = msg.get(pos..pos + 10)?;
        let t = u16::from_be_bytes([hdr[0], hdr[1]]);
        let len = u16::from_be_bytes([hdr[8], hdr[9]]) as usize;
        let data = msg.get(pos + 10..pos + 10 + len)?;
        if t == TYPE_A && len == 4 {
            ips.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        pos += 10 + len;
    }
    Some((rcode, ips))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Map;
    impl Resolver for Map {
        fn lookup(&self, name: &str) -> Option<Vec<Ipv4Addr>> {
            (name == "web").then(|| vec![Ipv4Addr::new(10, 210, 1, 2)])
        }
        fn reverse(&self, ip: Ipv4Addr) -> Option<String> {
            (ip == Ipv4Addr::new(10, 210, 1, 2)).then(|| "web.net1".to_string())
        }
        fn upstreams(&self) -> Vec<SocketAddr> {
            Vec::new()
        }
    }

    #[test]
    fn answers_names_and_pointers() {
        let q = query(7, "WEB.", TYPE_A);
        let Outcome::Answer(a) = decide(&Map, &q) else {
            panic!("no answer")
        };
        assert_eq!(&a[..2], &[0, 7]);
        assert_eq!(
            answers_of(&a).unwrap(),
            (0, vec![Ipv4Addr::new(10, 210, 1, 2)])
        );
        let q = query(8, "web", TYPE_AAAA);
        let Outcome::Answer(a) = decide(&Map, &q) else {
            panic!()
        };
        assert_eq!(answers_of(&a).unwrap(), (0, vec![]));
        let q = query(9, "2.1.210.10.in-addr.arpa", TYPE_PTR);
        let Outcome::Answer(a) = decide(&Map, &q) else {
            panic!()
        };
        assert!(a.windows(4).any(|w| w == b"\x03web"), "{a:?}");
        // Not ours, nowhere to forward: SERVFAIL.
        let q = query(10, "example.org", TYPE_A);
        let Outcome::Answer(a) = decide(&Map, &q) else {
            panic!()
        };
        assert_eq!(answers_of(&a).unwrap().0, RCODE_SERVFAIL);
        assert_eq!(
            reverse_name("4.3.2.1.in-addr.arpa"),
            Some(Ipv4Addr::new(1, 2, 3, 4))
        );
        assert!(reverse_name("x.3.2.1.in-addr.arpa").is_none());
    }

    #[test]
    fn hostile_messages_never_panic() {
        assert_eq!(parse_query(&[0; 5]), Err(Bad::Drop));
        let mut q = query(1, "a", TYPE_A);
        q[12] = 0xc0; // a pointer as the first label
        assert_eq!(parse_query(&q), Err(Bad::Reply(RCODE_FORMERR)));
        // A cheap deterministic fuzz: random bytes behind a valid header.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for len in 0..600 {
            let mut m = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                m.push(x as u8);
            }
            if m.len() > 5 {
                m[2] &= 0x07;
                m[4] = 0;
                m[5] = 1;
            }
            let _ = decide(&Map, &m);
            let _ = answers_of(&m);
        }
    }
}
