//! What the server knows about the authentication behind a session: at
//! Access-Accept the engine records who was let in (identity, certificate
//! serial and issuer and the CAs it came with, groups, rule, NAS, station,
//! time) under a token of its own, sent in a Class attribute that the NAS
//! echoes in accounting (RFC 2865 §5.25). The accounting session that
//! follows is tied to it by that token, or else by NAS, Calling-Station-Id
//! and User-Name; from then on the session carries it (and the journal
//! does, so it survives restarts).
//!
//! `Authentications` keeps the ones no accounting session has claimed yet
//! (a NAS without accounting never claims them): bounded, and forgotten
//! after their lifetime.
//!
//! Sans-I/O bookkeeping: it must not decide who is revoked or disconnected.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::proto::tls::identity::CertIdentity;

/// The Class value prefix of the server's token.
pub const TOKEN_PREFIX: &str = "certgate:";

/// One Access-Accept, as sessions carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authentication {
    /// 16 hex digits, random; echoed in Class as `certgate:TOKEN`.
    pub token: String,
    /// The authorized identity (the Accept's User-Name).
    pub identity: String,
    pub outer_identity: String,
    /// Unix seconds of the Accept.
    pub at: i64,
    /// The NAS client entry.
    pub nas: String,
    /// Where the Access-Request came from (the NAS, or its RadSec peer).
    pub source: String,
    pub radsec: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nas_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calling_station: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub called_station: Option<String>,
    pub certificate: CertIdentity,
    /// (issuer, serial) of every CA certificate the client sent with its
    /// own, so revoking an intermediate reaches its sessions.
    #[serde(default)]
    pub chain: Vec<(String, String)>,
    pub groups: Vec<String>,
    pub rule: String,
    /// A digest of the reply attributes granted: re-authorization compares
    /// it to tell a changed policy result.
    pub reply: String,
}

impl Authentication {
    /// The (issuer, serial) pairs a CRL can revoke: the certificate's own,
    /// then its CAs'.
    pub fn serials(&self) -> impl Iterator<Item = (&str, &str)> {
        std::iter::once((
            self.certificate.issuer.as_str(),
            self.certificate.serial.as_str(),
        ))
        .chain(self.chain.iter().map(|(i, s)| (i.as_str(), s.as_str())))
    }
}

/// The token in a Class value, if it is ours.
pub fn token_of(class: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(class).ok()?;
    let token = text.strip_prefix(TOKEN_PREFIX)?;
    (token.len() == 16 && token.bytes().all(|b| b.is_ascii_hexdigit())).then_some(token)
}

/// A MAC address in any notation reduced to its hex digits, lower case.
pub fn station_key(station: &str) -> String {
    station
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Authentications no accounting session has claimed yet.
#[derive(Debug)]
pub struct Authentications {
    by_token: HashMap<String, Authentication>,
    /// (NAS, station key) → token of the latest authentication there.
    by_station: HashMap<(String, String), String>,
    /// Tokens in arrival order, for expiry and the bound.
    order: VecDeque<(i64, String)>,
    max: usize,
    lifetime_secs: i64,
}

impl Authentications {
    pub fn new(max: usize, lifetime_secs: i64) -> Self {
        Authentications {
            by_token: HashMap::new(),
            by_station: HashMap::new(),
            order: VecDeque::new(),
            max: max.max(1),
            lifetime_secs,
        }
    }

    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }

    /// Records an Accept; a newer one at the same NAS and station replaces
    /// the older (a re-authentication). The oldest goes when full.
    pub fn insert(&mut self, auth: Authentication) {
        if let Some(station) = &auth.calling_station {
            let key = (auth.nas.clone(), station_key(station));
            if let Some(old) = self.by_station.insert(key, auth.token.clone()) {
                self.by_token.remove(&old);
            }
        }
        self.order.push_back((auth.at, auth.token.clone()));
        self.by_token.insert(auth.token.clone(), auth);
        while self.by_token.len() > self.max {
            let Some((_, token)) = self.order.pop_front() else {
                break;
            };
            self.remove(&token);
        }
    }

    pub fn get(&self, token: &str) -> Option<&Authentication> {
        self.by_token.get(token)
    }

    /// The latest authentication of `user` at this NAS and station: how an
    /// accounting session without the token is tied to one.
    pub fn by_station(
        &self,
        nas: &str,
        station: &str,
        user: Option<&str>,
    ) -> Option<&Authentication> {
        let token = self
            .by_station
            .get(&(nas.to_string(), station_key(station)))?;
        self.by_token
            .get(token)
            .filter(|a| user.is_none_or(|u| u.eq_ignore_ascii_case(&a.identity)))
    }

    /// Removes one (claimed by a session, or expired).
    pub fn remove(&mut self, token: &str) -> Option<Authentication> {
        let auth = self.by_token.remove(token)?;
        if let Some(station) = &auth.calling_station {
            let key = (auth.nas.clone(), station_key(station));
            if self.by_station.get(&key).is_some_and(|t| t == token) {
                self.by_station.remove(&key);
            }
        }
        Some(auth)
    }

    /// Forgets those older than the lifetime; returns how many.
    pub fn expire(&mut self, now_unix: i64) -> usize {
        let mut gone = 0;
        while let Some((at, _)) = self.order.front() {
            if now_unix - at <= self.lifetime_secs {
                break;
            }
            if let Some((_, token)) = self.order.pop_front()
                && self.remove(&token).is_some()
            {
                gone += 1;
            }
        }
        // Tokens removed when claimed still sit in `order`; keep it from
        // growing past the live ones by more than the bound.
        if self.order.len() > 2 * self.max {
            let live = &self.by_token;
            self.order.retain(|(_, t)| live.contains_key(t));
        }
        gone
    }

    pub fn iter(&self) -> impl Iterator<Item = &Authentication> {
        self.by_token.values()
    }
}

#[cfg(test)]
pub(crate) fn sample(token: &str, nas: &str, station: &str, at: i64) -> Authentication {
    Authentication {
        token: token.into(),
        identity: "alice@example.org".into(),
        outer_identity: "alice@example.org".into(),
        at,
        nas: nas.into(),
        source: "127.0.0.1".into(),
        radsec: false,
        nas_identifier: Some("ap-1".into()),
        calling_station: Some(station.into()),
        called_station: None,
        certificate: CertIdentity {
            serial: "0a1b".into(),
            issuer: "CN=Test CA".into(),
            ..CertIdentity::default()
        },
        chain: vec![("CN=Root".into(), "77".into())],
        groups: vec!["employees".into()],
        rule: "employees".into(),
        reply: "0".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_recognised_only_in_their_own_form() {
        assert_eq!(
            token_of(b"certgate:0123456789abcdef"),
            Some("0123456789abcdef")
        );
        assert_eq!(token_of(b"certgate:0123"), None);
        assert_eq!(token_of(b"certgate:0123456789abcdeg"), None);
        assert_eq!(token_of(b"group=staff"), None);
        assert_eq!(token_of(&[0xff, 0xfe]), None);
    }

    #[test]
    fn stations_match_in_any_notation() {
        assert_eq!(
            station_key("E2-8D-D9-F8-22-95"),
            station_key("e2:8d:d9:f8:22:95")
        );
        assert_eq!(station_key("e28d.d9f8.2295"), "e28dd9f82295");
    }

    #[test]
    fn claims_replacement_bound_and_expiry() {
        let mut a = Authentications::new(2, 100);
        a.insert(sample("1111111111111111", "ap", "E2-8D-D9-F8-22-95", 10));
        assert!(
            a.by_station("ap", "e2:8d:d9:f8:22:95", Some("ALICE@example.org"))
                .is_some()
        );
        assert!(
            a.by_station("ap", "e2:8d:d9:f8:22:95", Some("bob"))
                .is_none()
        );
        assert!(a.by_station("other", "e2:8d:d9:f8:22:95", None).is_none());
        // A re-authentication at the same station replaces the first.
        a.insert(sample("2222222222222222", "ap", "e2:8d:d9:f8:22:95", 20));
        assert_eq!(a.len(), 1);
        assert!(a.get("1111111111111111").is_none());
        a.insert(sample("3333333333333333", "ap", "00:00:00:00:00:01", 30));
        a.insert(sample("4444444444444444", "ap", "00:00:00:00:00:02", 40));
        assert_eq!(a.len(), 2, "bounded: the oldest went");
        assert!(a.get("2222222222222222").is_none());
        assert!(a.remove("3333333333333333").is_some());
        assert!(a.by_station("ap", "00:00:00:00:00:01", None).is_none());
        assert_eq!(a.expire(140), 0, "40 + 100 s lifetime");
        assert_eq!(a.expire(141), 1);
        assert!(a.is_empty());
    }
}
