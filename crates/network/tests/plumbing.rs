//! Root-only: bridges, veth pairs into a pinned namespace, addresses, routes, and the DNS
//! server answering inside the namespace. Names are `bt-…`, addresses 10.210.24x.0/24;
//! everything is removed by guards even when an assertion fails.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use berth_network::netlink::Netlink;
use berth_network::{Ipv4Net, dns, netns};

struct Bridge(String);
impl Drop for Bridge {
    fn drop(&mut self) {
        if let Ok(mut nl) = Netlink::open() {
            let _ = nl.delete_link(&self.0);
        }
    }
}

struct Ns(PathBuf);
impl Drop for Ns {
    fn drop(&mut self) {
        let _ = netns::remove(&self.0);
        let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
    }
}

fn nsexec(ns: &Path, args: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(args)
        .output()
        .expect("nsenter");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

struct Names;
impl dns::Resolver for Names {
    fn lookup(&self, name: &str) -> Option<Vec<Ipv4Addr>> {
        (name == "peer").then(|| vec![Ipv4Addr::new(10, 210, 241, 7)])
    }
    fn reverse(&self, _: Ipv4Addr) -> Option<String> {
        None
    }
    fn upstreams(&self) -> Vec<SocketAddr> {
        Vec::new()
    }
}

#[test]
fn bridge_veth_namespace_and_dns() {
    if !rustix_is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tag = std::process::id() % 100000;
    let br = Bridge(format!("bt-nt{tag}"));
    let mut nl = Netlink::open().unwrap();
    nl.create_bridge(&br.0, None).unwrap();
    let link = nl.link(&br.0).unwrap().unwrap();
    assert_eq!(link.kind.as_deref(), Some("bridge"));
    let gw: Ipv4Net = "10.210.241.1/24".parse().unwrap();
    nl.add_addr(link.index, gw).unwrap();
    assert!(nl.addrs().unwrap().contains(&(link.index, gw)));
    assert!(
        nl.routes()
            .unwrap()
            .iter()
            .any(|(d, _)| *d == "10.210.241.0/24".parse().unwrap())
    );

    let dir = PathBuf::from(format!("/tmp/bt-nt-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let ns = Ns(dir.join("ns"));
    let (mut inner, sockets) = netns::create(&ns.0, || {
        let mut nl = Netlink::open()?;
        nl.set_up(1)?;
        let a = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 11), 53));
        Ok((nl, (UdpSocket::bind(a)?, std::net::TcpListener::bind(a)?)))
    })
    .unwrap();
    assert!(netns::is_namespace(&ns.0));
    let veth = format!("bt-v{tag}");
    let nsfd = netns::open(&ns.0).unwrap();
    use std::os::fd::AsRawFd;
    nl.create_veth(
        &veth,
        link.index,
        "eth0",
        nsfd.as_raw_fd(),
        Some([2, 0x42, 10, 210, 241, 2]),
        None,
    )
    .unwrap();
    let host_end = nl.link(&veth).unwrap().unwrap();
    assert_eq!(host_end.master, Some(link.index));
    assert!(host_end.up);
    let eth0 = inner.link("eth0").unwrap().unwrap();
    assert!(!eth0.up);
    inner.set_up(eth0.index).unwrap();
    inner
        .add_addr(eth0.index, "10.210.241.2/24".parse().unwrap())
        .unwrap();
    inner
        .add_route(None, Some(Ipv4Addr::new(10, 210, 241, 1)), eth0.index)
        .unwrap();
    let addr = nsexec(&ns.0, &["ip", "-4", "-o", "addr"]);
    assert!(addr.contains("10.210.241.2/24"), "{addr}");
    let route = nsexec(&ns.0, &["ip", "route"]);
    assert!(
        route.contains("default via 10.210.241.1 dev eth0"),
        "{route}"
    );
    let ping = nsexec(&ns.0, &["busybox", "ping", "-c1", "-W2", "10.210.241.1"]);
    assert!(ping.contains("1 packets received"), "{ping}");

    // The DNS server answers inside the namespace from berth's runtime.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _g = rt.enter();
    let server = dns::serve(sockets.0, sockets.1, Arc::new(Names)).unwrap();
    let answer = std::thread::scope(|s| {
        let h = s.spawn(|| {
            netns::enter(&ns.0, || {
                let c = UdpSocket::bind("127.0.0.1:0")?;
                c.set_read_timeout(Some(Duration::from_secs(5)))?;
                c.send_to(&dns::query(42, "peer", 1), "127.0.0.11:53")?;
                let mut buf = [0u8; 512];
                let n = c.recv(&mut buf)?;
                Ok(buf[..n].to_vec())
            })
        });
        rt.block_on(async {
            while !h.is_finished() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        h.join().unwrap().unwrap()
    });
    assert_eq!(
        dns::answers_of(&answer).unwrap(),
        (0, vec![Ipv4Addr::new(10, 210, 241, 7)])
    );
    // Everything holding the namespace goes: the DNS sockets, our netlink socket and fd.
    drop(server);
    // Aborted tasks drop their sockets only when their runtime runs or goes.
    drop(_g);
    drop(rt);
    drop(inner);
    drop(nsfd);
    drop(ns);
    // Without the namespace the veth pair goes too (the kernel cleans up asynchronously).
    let mut gone = false;
    for _ in 0..500 {
        if nl.link(&veth).unwrap().is_none() {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone, "veth {veth} outlived its namespace");
}

fn rustix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}
