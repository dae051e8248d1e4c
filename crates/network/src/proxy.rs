//! The userland proxy for published ports: berthd listens on `host_ip:host_port` itself.
//! That reserves the port on the host (a port in use is refused at start, as docker does)
//! and serves the connections DNAT cannot: those to the host's loopback and those from
//! containers on the destination's own bridge.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

const UDP_IDLE: Duration = Duration::from_secs(60);

/// A running proxy; dropping it closes the listener.
pub struct Proxy {
    task: JoinHandle<()>,
    flows: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        for t in self.flows.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// Binds a TCP listener for a published port (blocking; errors name the address).
pub fn bind_tcp(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

pub fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let s = std::net::UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    Ok(s)
}

/// Proxies connections accepted on `l` to `target`. Call inside the tokio runtime.
pub fn tcp(l: std::net::TcpListener, target: SocketAddr) -> std::io::Result<Proxy> {
    let l = TcpListener::from_std(l)?;
    let flows: Arc<Mutex<Vec<JoinHandle<()>>>> = Default::default();
    let f2 = flows.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = l.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let t = tokio::spawn(async move {
                let Ok(Ok(mut out)) =
                    tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(target)).await
                else {
                    return;
                };
                let _ = inbound.set_nodelay(true);
                let _ = out.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
            });
            let mut g = f2.lock().unwrap();
            g.retain(|h| !h.is_finished());
            g.push(t);
        }
    });
    Ok(Proxy { task, flows })
}

/// Relays datagrams on `s` to `target`, one upstream socket per client, dropped when idle.
pub fn udp(s: std::net::UdpSocket, target: SocketAddr) -> std::io::Result<Proxy> {
    let s = Arc::new(UdpSocket::from_std(s)?);
    let flows: Arc<Mutex<Vec<JoinHandle<()>>>> = Default::default();
    let f2 = flows.clone();
    let task = tokio::spawn(async move {
        let clients: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Default::default();
        let mut buf = vec![0u8; 65536];
        loop {
            let Ok((n, peer)) = s.recv_from(&mut buf).await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let existing = clients.lock().unwrap().get(&peer).cloned();
            let up = match existing {
                Some(u) => u,
                None => {
                    let Ok(u) = UdpSocket::bind("0.0.0.0:0").await else {
                        continue;
                    };
                    if u.connect(target).await.is_err() {
                        continue;
                    }
                    let u = Arc::new(u);
                    clients.lock().unwrap().insert(peer, u.clone());
                    let (u2, s2, c2) = (u.clone(), s.clone(), clients.clone());
                    let t = tokio::spawn(async move {
                        let mut b = vec![0u8; 65536];
                        while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, u2.recv(&mut b)).await
                        {
                            let _ = s2.send_to(&b[..n], peer).await;
                        }
                        c2.lock().unwrap().remove(&peer);
                    });
                    let mut g = f2.lock().unwrap();
                    g.retain(|h| !h.is_finished());
                    g.push(t);
                    u
                }
            };
            let _ = up.send(&buf[..n]).await;
        }
    });
    Ok(Proxy { task, flows })
}
