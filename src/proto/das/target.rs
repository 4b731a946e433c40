//! Which live sessions a request is about, and how the NAS is told which
//! one: an operator's selector (user, certificate serial, station, NAS,
//! group) matched against what a session and its authentication hold, and
//! the identifying attributes of RFC 5176 §3 built from them.
//!
//! Matching and encoding only: it must not send anything.

use std::net::{IpAddr, Ipv4Addr};

use super::Identify;
use crate::proto::accounting::auth::{Authentication, station_key};
use crate::proto::wire::attr::ACCT_SESSION_ID;
use crate::proto::wire::attr::{
    CALLING_STATION_ID, FRAMED_IP_ADDRESS, NAS_IDENTIFIER, NAS_IP_ADDRESS, USER_NAME,
};

/// Which sessions an operator means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The identity (certificate identity or accounting User-Name), ASCII
    /// case aside.
    User(String),
    /// The certificate's serial in hex (colons and leading zeros aside).
    Serial(String),
    /// A MAC address in any notation.
    CallingStation(String),
    /// A NAS client entry's name.
    Nas(String),
    /// A directory group the authentication was granted with.
    Group(String),
}

impl Selector {
    /// A label for logs: `user=alice@example.org`.
    pub fn describe(&self) -> String {
        match self {
            Selector::User(v) => format!("user={v}"),
            Selector::Serial(v) => format!("serial={v}"),
            Selector::CallingStation(v) => format!("calling_station={v}"),
            Selector::Nas(v) => format!("nas={v}"),
            Selector::Group(v) => format!("group={v}"),
        }
    }

    /// Whether a session (its accounting facts and its authentication,
    /// when known) is meant.
    pub fn matches(&self, t: &Target) -> bool {
        let auth = t.auth.as_ref();
        match self {
            Selector::User(u) => {
                t.user.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(u))
                    || auth.is_some_and(|a| a.identity.eq_ignore_ascii_case(u))
            }
            Selector::Serial(s) => {
                auth.is_some_and(|a| serial_key(&a.certificate.serial) == serial_key(s))
            }
            Selector::CallingStation(m) => t
                .calling_station
                .as_deref()
                .is_some_and(|x| station_key(x) == station_key(m)),
            Selector::Nas(n) => t.nas == *n,
            Selector::Group(g) => {
                t.group.as_deref() == Some(g.as_str())
                    || auth.is_some_and(|a| a.groups.iter().any(|x| x == g))
            }
        }
    }
}

/// A serial as compared: hex digits only, lower case, no leading zeros.
pub fn serial_key(serial: &str) -> String {
    let hex: String = serial
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".into()
    } else {
        trimmed.into()
    }
}

/// One session to act on: what the NAS knows it by, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The NAS client entry.
    pub nas: String,
    /// Where its RADIUS came from.
    pub source: Option<IpAddr>,
    /// None for an authentication no accounting session has claimed.
    pub session_id: Option<String>,
    pub user: Option<String>,
    pub calling_station: Option<String>,
    pub nas_identifier: Option<String>,
    pub nas_ip: Option<String>,
    pub framed_ip: Option<String>,
    pub group: Option<String>,
    pub auth: Option<Box<Authentication>>,
}

impl Target {
    /// A target for an authentication alone (no accounting session).
    pub fn of_authentication(a: &Authentication) -> Self {
        Target {
            nas: a.nas.clone(),
            source: a.source.parse().ok(),
            session_id: None,
            user: Some(a.identity.clone()),
            calling_station: a.calling_station.clone(),
            nas_identifier: a.nas_identifier.clone(),
            nas_ip: None,
            framed_ip: None,
            group: None,
            auth: Some(Box::new(a.clone())),
        }
    }

    /// The identifying attributes `identify` asks for, each when known.
    pub fn attributes(&self, identify: &[Identify]) -> Vec<(u8, Vec<u8>)> {
        let v4 = |s: &Option<String>| {
            s.as_deref()
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
                .map(|a| a.octets().to_vec())
        };
        let text = |s: &Option<String>| s.as_ref().map(|v| v.as_bytes().to_vec());
        identify
            .iter()
            .filter_map(|i| {
                let (kind, value) = match i {
                    Identify::UserName => (USER_NAME, text(&self.user)),
                    Identify::AcctSessionId => (ACCT_SESSION_ID, text(&self.session_id)),
                    Identify::CallingStationId => (CALLING_STATION_ID, text(&self.calling_station)),
                    Identify::NasIdentifier => (NAS_IDENTIFIER, text(&self.nas_identifier)),
                    Identify::NasIpAddress => (NAS_IP_ADDRESS, v4(&self.nas_ip)),
                    Identify::FramedIpAddress => (FRAMED_IP_ADDRESS, v4(&self.framed_ip)),
                };
                value
                    .filter(|v| !v.is_empty() && v.len() <= 253)
                    .map(|v| (kind, v))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::accounting::auth::sample;

    fn target() -> Target {
        let mut t = Target::of_authentication(&sample("1", "ap", "E2-8D-D9-F8-22-95", 1));
        t.session_id = Some("13A7BCD4612CD8B5".into());
        t.nas_ip = Some("192.0.2.1".into());
        t
    }

    #[test]
    fn selectors_match_what_operators_type() {
        let t = target();
        assert!(Selector::User("Alice@Example.org".into()).matches(&t));
        assert!(!Selector::User("bob".into()).matches(&t));
        assert!(Selector::Serial("0A:1B".into()).matches(&t));
        assert!(Selector::Serial("00a1b".into()).matches(&t));
        assert!(!Selector::Serial("a1c".into()).matches(&t));
        assert!(Selector::CallingStation("e28d.d9f8.2295".into()).matches(&t));
        assert!(Selector::Nas("ap".into()).matches(&t));
        assert!(!Selector::Nas("a".into()).matches(&t));
        assert!(Selector::Group("employees".into()).matches(&t));
        assert!(!Selector::Group("contractors".into()).matches(&t));
        let mut bare = t.clone();
        bare.auth = None;
        assert!(!Selector::Serial("0a1b".into()).matches(&bare));
    }

    #[test]
    fn identifying_attributes_follow_the_list_and_skip_unknowns() {
        let t = target();
        let attrs = t.attributes(&[
            Identify::AcctSessionId,
            Identify::UserName,
            Identify::NasIpAddress,
            Identify::FramedIpAddress,
        ]);
        assert_eq!(
            attrs,
            vec![
                (ACCT_SESSION_ID, b"13A7BCD4612CD8B5".to_vec()),
                (USER_NAME, b"alice@example.org".to_vec()),
                (NAS_IP_ADDRESS, vec![192, 0, 2, 1]),
            ]
        );
    }
}
