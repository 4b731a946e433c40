//! RADIUS over TLS (RFC 6614, RFC 6613, RFC 7930) as the engine sees it:
//! which configured client a NAS certificate belongs to, and where one
//! packet ends in the decrypted byte stream. TLS itself is the shell's
//! (`server::radsec` terminates it); what comes out of it is fed here and
//! then to the same admission and processing as UDP.
//!
//! Sans-I/O: certificates and bytes in, a client or a packet length out.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use thiserror::Error;

use super::authz::pattern::Pattern;
use super::tls::identity::CertIdentity;
use super::wire::HEADER_LEN;
use crate::config::ClientConfig;

/// A client that speaks RadSec, as configured.
#[derive(Debug, Clone)]
pub struct RadsecClient {
    pub client: ClientConfig,
    /// Globs over the certificate's DNS and URI SANs and its CN; any match
    /// will do.
    pub names: Vec<String>,
    /// When set, the connection must come from this network too.
    pub network: Option<IpNet>,
}

/// The RadSec clients, matched in the order configured.
#[derive(Debug, Default)]
pub struct RadsecClients {
    entries: Vec<(Vec<Pattern>, Option<IpNet>, Arc<ClientConfig>)>,
}

impl RadsecClients {
    pub fn new(clients: &[RadsecClient]) -> Self {
        RadsecClients {
            entries: clients
                .iter()
                .map(|c| {
                    (
                        c.names.iter().map(|n| Pattern::new(n)).collect(),
                        c.network,
                        Arc::new(c.client.clone()),
                    )
                })
                .collect(),
        }
    }

    /// The first client whose names match one of the certificate's DNS or
    /// URI SANs or its CN, and whose network (when it has one) holds
    /// `addr`.
    pub fn find(&self, cert: &CertIdentity, addr: IpAddr) -> Option<&Arc<ClientConfig>> {
        let addr = addr.to_canonical();
        let names: Vec<&str> = cert
            .dns
            .iter()
            .chain(&cert.uris)
            .chain(&cert.cns)
            .map(String::as_str)
            .collect();
        self.entries
            .iter()
            .find(|(patterns, network, _)| {
                network.is_none_or(|n| n.contains(&addr))
                    && patterns.iter().any(|p| names.iter().any(|n| p.matches(n)))
            })
            .map(|(_, _, c)| c)
    }

    /// Whether a client of this name is configured (a reload closes the
    /// connections of clients that are gone).
    pub fn has(&self, name: &str) -> bool {
        self.named(name).is_some()
    }

    /// The client of this name.
    pub fn named(&self, name: &str) -> Option<&Arc<ClientConfig>> {
        self.entries
            .iter()
            .find(|(_, _, c)| c.name == name)
            .map(|(_, _, c)| c)
    }
}

/// Why a byte stream cannot go on: a Length that cannot be resynchronised.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    #[error("Length {length} is outside {HEADER_LEN}..={max}")]
    Length { length: usize, max: usize },
}

/// The length of the first whole packet at the front of `buf`: Some when
/// it is all there, None when more bytes are needed. The RADIUS Length
/// field is the only framing on a stream (RFC 6613 §2.2); a Length outside
/// 20..=`max` cannot be resynchronised, and the connection must close.
pub fn frame(buf: &[u8], max: usize) -> Result<Option<usize>, FrameError> {
    let [_, _, hi, lo, ..] = *buf else {
        return Ok(None);
    };
    let length = usize::from(u16::from_be_bytes([hi, lo]));
    if !(HEADER_LEN..=max).contains(&length) {
        return Err(FrameError::Length { length, max });
    }
    Ok((buf.len() >= length).then_some(length))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::wire::crypto::Secret;

    fn client(name: &str, names: &[&str], network: Option<&str>) -> RadsecClient {
        RadsecClient {
            client: ClientConfig {
                name: name.into(),
                secret: Secret::new(b"radsec"),
                require_message_authenticator: true,
                limit_proxy_state: true,
                das: Default::default(),
            },
            names: names.iter().map(|n| n.to_string()).collect(),
            network: network.map(|n| n.parse().expect("network")),
        }
    }

    #[test]
    fn clients_are_matched_by_certificate_names_and_network() {
        let clients = RadsecClients::new(&[
            client("branch", &["*.branch.example.org"], Some("10.0.0.0/8")),
            client("meraki", &["*.ap.example.org", "urn:meraki:*"], None),
        ]);
        let cert = |dns: &[&str], uris: &[&str], cn: &str| CertIdentity {
            dns: dns.iter().map(|s| s.to_string()).collect(),
            uris: uris.iter().map(|s| s.to_string()).collect(),
            cns: vec![cn.into()],
            ..CertIdentity::default()
        };
        let name = |c: &CertIdentity, ip: &str| {
            clients
                .find(c, ip.parse().expect("ip"))
                .map(|c| c.name.clone())
        };
        let ap = cert(&["q2xx-1.ap.example.org"], &[], "Q2XX-1");
        assert_eq!(name(&ap, "192.0.2.9").as_deref(), Some("meraki"));
        let by_uri = cert(&[], &["urn:meraki:org:42"], "x");
        assert_eq!(name(&by_uri, "192.0.2.9").as_deref(), Some("meraki"));
        let by_cn = cert(&[], &[], "sw1.branch.example.org");
        assert_eq!(name(&by_cn, "10.1.1.1").as_deref(), Some("branch"));
        assert_eq!(name(&by_cn, "192.0.2.9"), None, "outside its network");
        let stranger = cert(&["evil.example.net"], &[], "evil");
        assert_eq!(name(&stranger, "10.1.1.1"), None);
        assert!(clients.has("meraki") && !clients.has("gone"));
    }

    #[test]
    fn framing_finds_whole_packets_and_refuses_bad_lengths() {
        let packet = |len: u16| {
            let mut p = vec![1, 7];
            p.extend_from_slice(&len.to_be_bytes());
            p.resize(usize::from(len), 0);
            p
        };
        assert_eq!(frame(&[], 4096), Ok(None));
        assert_eq!(frame(&[1, 7, 0], 4096), Ok(None), "Length not all there");
        let p = packet(38);
        assert_eq!(frame(&p[..30], 4096), Ok(None), "packet not all there");
        assert_eq!(frame(&p, 4096), Ok(Some(38)));
        let mut two = p.clone();
        two.extend_from_slice(&packet(20));
        assert_eq!(frame(&two, 4096), Ok(Some(38)), "the first of two");
        assert_eq!(
            frame(&[1, 7, 0, 19], 4096),
            Err(FrameError::Length {
                length: 19,
                max: 4096
            })
        );
        assert_eq!(
            frame(&[1, 7, 0x10, 0x01], 4096),
            Err(FrameError::Length {
                length: 4097,
                max: 4096
            })
        );
        assert_eq!(
            frame(&[1, 7, 0x10, 0x01], 8192),
            Ok(None),
            "RFC 7930 larger packets"
        );
    }
}
