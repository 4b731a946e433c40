//! What one accounting record does to FreeRADIUS's `radacct` table — the
//! schema daloRADIUS, SQL reports and Grafana panels written for FreeRADIUS
//! read — as FreeRADIUS's queries do it: Start opens a row, Interim-Update
//! updates its counters, Stop closes it, Accounting-On/Off closes every
//! open row of the NAS. The row is named by AcctUniqueId, derived here from
//! the NAS client and Acct-Session-Id.
//!
//! Time decides, not arrival: every change carries the event time (receive
//! time less Acct-Delay-Time), and the shell's SQL applies an Interim only
//! over an older one and never to a closed row, so a node that stalled and
//! ships an old Interim late cannot overwrite newer counters.
//!
//! Sans-I/O: a record in, the change out. The SQL is the shell's.

use std::net::{IpAddr, Ipv4Addr};

use md5::{Digest, Md5};

use super::record::{Record, Status};

/// One row's values, as `radacct` columns hold them.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub unique_id: String,
    pub session_id: String,
    pub user: Option<String>,
    pub realm: Option<String>,
    pub nas_ip: IpAddr,
    pub nas_port_type: Option<String>,
    /// Unix seconds of the event: receive time less Acct-Delay-Time.
    pub event: i64,
    pub session_time: Option<i64>,
    pub input_octets: Option<i64>,
    pub output_octets: Option<i64>,
    pub called_station: Option<String>,
    pub calling_station: Option<String>,
    pub terminate_cause: Option<String>,
    pub framed_ip: Option<IpAddr>,
    pub class: Option<String>,
}

/// What a record does to `radacct`.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Start(Row),
    Interim(Row),
    Stop(Row),
    /// Accounting-On/Off: close the NAS's open rows started before `at`.
    CloseNas {
        nas_ip: IpAddr,
        at: i64,
    },
    /// Nothing (no session id, another status).
    None,
}

/// AcctUniqueId: the NAS client and its Acct-Session-Id, hashed (hex MD5,
/// the form FreeRADIUS's acct_unique writes).
pub fn unique_id(client: &str, session_id: &str) -> String {
    let mut h = Md5::new();
    h.update(client.as_bytes());
    h.update([0]);
    h.update(session_id.as_bytes());
    crate::proto::hex::encode(&h.finalize())
}

fn nas_ip(r: &Record) -> IpAddr {
    r.nas_ip
        .as_deref()
        .or(r.source.as_deref())
        .and_then(|a| a.parse().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// The change one record makes.
pub fn change(r: &Record) -> Change {
    let event = r.unix - i64::from(r.delay_time.unwrap_or(0));
    let status = match r.status {
        Some(s) => s,
        None => return Change::None,
    };
    if matches!(status, Status::AccountingOn | Status::AccountingOff) {
        return Change::CloseNas {
            nas_ip: nas_ip(r),
            at: event,
        };
    }
    let Some(session_id) = r.session_id.clone() else {
        return Change::None;
    };
    let attr = |name: &str| -> Option<String> {
        let v: serde_json::Value = serde_json::from_str(r.attributes.json()).ok()?;
        v.get(name)?.as_str().map(str::to_string)
    };
    let row = Row {
        unique_id: unique_id(&r.client, &session_id),
        session_id,
        realm: r
            .user
            .as_deref()
            .and_then(|u| u.rsplit_once('@'))
            .map(|(_, realm)| realm.to_string()),
        user: r.user.clone(),
        nas_ip: nas_ip(r),
        nas_port_type: attr("NAS-Port-Type"),
        event,
        session_time: r.session_time.map(i64::from),
        input_octets: r.input_octets.and_then(|o| i64::try_from(o).ok()),
        output_octets: r.output_octets.and_then(|o| i64::try_from(o).ok()),
        called_station: r.called_station.clone(),
        calling_station: r.calling_station.clone(),
        terminate_cause: r.terminate_cause.clone(),
        framed_ip: r.framed_ip.as_deref().and_then(|a| a.parse().ok()),
        class: r.class.clone(),
    };
    match status {
        Status::Start => Change::Start(row),
        Status::InterimUpdate => Change::Interim(row),
        Status::Stop => Change::Stop(row),
        _ => Change::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: Status, delay: u32) -> Record {
        Record {
            time: String::new(),
            unix: 1_000,
            client: "ap".into(),
            status: Some(status),
            session_id: Some("S1".into()),
            user: Some("alice@example.org".into()),
            nas_ip: None,
            nas_identifier: None,
            calling_station: Some("02-00-00-00-00-01".into()),
            called_station: None,
            framed_ip: Some("10.0.0.7".into()),
            class: Some("group=staff".into()),
            session_time: Some(60),
            input_octets: Some((1 << 32) + 5),
            output_octets: None,
            input_packets: None,
            output_packets: None,
            terminate_cause: None,
            delay_time: Some(delay),
            source: Some("192.0.2.9".into()),
            token: None,
            auth: None,
            probable_duplicate: false,
            attributes: Default::default(),
        }
    }

    #[test]
    fn records_become_radacct_changes_at_their_event_time() {
        let Change::Interim(row) = change(&record(Status::InterimUpdate, 30)) else {
            panic!("an interim");
        };
        assert_eq!(row.event, 970, "receive time less Acct-Delay-Time");
        assert_eq!(row.realm.as_deref(), Some("example.org"));
        assert_eq!(
            row.nas_ip,
            "192.0.2.9".parse::<IpAddr>().expect("ip"),
            "no NAS-IP-Address: the source"
        );
        assert_eq!(row.input_octets, Some((1 << 32) + 5), "64-bit octets");
        assert_eq!(row.unique_id, unique_id("ap", "S1"));
        assert_ne!(
            unique_id("ap", "S1"),
            unique_id("ap2", "S1"),
            "per NAS client"
        );
        assert!(matches!(
            change(&record(Status::Start, 0)),
            Change::Start(_)
        ));
        assert!(matches!(change(&record(Status::Stop, 0)), Change::Stop(_)));
        assert_eq!(
            change(&record(Status::AccountingOn, 0)),
            Change::CloseNas {
                nas_ip: "192.0.2.9".parse().expect("ip"),
                at: 1_000
            }
        );
        let mut no_id = record(Status::Start, 0);
        no_id.session_id = None;
        assert_eq!(change(&no_id), Change::None);
    }
}
