//! berth's container networking, as libraries the daemon composes:
//! - [`netlink`]: links (bridges, veth pairs), addresses and routes, without `ip`;
//! - [`netns`]: persistent network namespaces and running code inside them;
//! - [`ipam`]: subnets from address pools, addresses from subnets;
//! - [`nft`]: berth's nftables table (masquerade, DNAT, isolation), replaced atomically;
//! - [`proxy`]: the userland proxy for published ports;
//! - [`dns`]: the embedded DNS server at 127.0.0.11;
//! - [`files`]: /etc/hosts and /etc/resolv.conf contents;
//! - [`forward`]: `ip_forward`, shared between daemons.

pub mod addr;
pub mod dns;
pub mod files;
pub mod forward;
pub mod ipam;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod proxy;

pub use addr::Ipv4Net;
