//! The NAS client table: which configured client a source address belongs
//! to, by longest-prefix match over IPv4 and IPv6 networks.
//!
//! Pure look-up; it must not verify packets (the pipeline does, with the
//! secret found here).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::config::{ClientConfig, UdpClient};

/// Clients indexed for look-up: single hosts by address, networks by
/// descending prefix length so the first match is the most specific.
#[derive(Debug, Default)]
pub struct ClientTable {
    hosts: HashMap<IpAddr, Arc<ClientConfig>>,
    networks: Vec<(ipnet::IpNet, Arc<ClientConfig>)>,
}

impl ClientTable {
    pub fn new(clients: &[UdpClient]) -> Self {
        let mut table = ClientTable::default();
        for c in clients {
            let client = Arc::new(c.client.clone());
            if c.network.prefix_len() == c.network.max_prefix_len() {
                table.hosts.insert(c.network.addr(), client);
            } else {
                table.networks.push((c.network, client));
            }
        }
        table
            .networks
            .sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        table
    }

    /// The client for `addr`; IPv4-mapped IPv6 sources (dual-stack sockets)
    /// match IPv4 clients.
    pub fn lookup(&self, addr: IpAddr) -> Option<&Arc<ClientConfig>> {
        let addr = addr.to_canonical();
        self.hosts.get(&addr).or_else(|| {
            self.networks
                .iter()
                .find(|(net, _)| net.contains(&addr))
                .map(|(_, c)| c)
        })
    }

    pub fn len(&self) -> usize {
        self.hosts.len() + self.networks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::crypto::Secret;

    fn client(name: &str, net: &str) -> UdpClient {
        UdpClient {
            network: net.parse().expect("network"),
            client: ClientConfig {
                name: name.into(),
                secret: Secret::new(b"s"),
                require_message_authenticator: true,
                limit_proxy_state: true,
                das: Default::default(),
            },
        }
    }

    #[test]
    fn most_specific_wins() {
        let t = ClientTable::new(&[
            client("wide", "10.0.0.0/8"),
            client("narrow", "10.1.0.0/16"),
            client("host", "10.1.2.3/32"),
            client("v6", "2001:db8::/32"),
        ]);
        let name = |a: &str| t.lookup(a.parse().expect("ip")).map(|c| c.name.clone());
        assert_eq!(name("10.1.2.3").as_deref(), Some("host"));
        assert_eq!(name("10.1.9.9").as_deref(), Some("narrow"));
        assert_eq!(name("10.9.9.9").as_deref(), Some("wide"));
        assert_eq!(name("::ffff:10.1.2.3").as_deref(), Some("host"));
        assert_eq!(name("2001:db8::1").as_deref(), Some("v6"));
        assert_eq!(name("192.0.2.1"), None);
        assert_eq!(name("2001:db9::1"), None);
    }
}
