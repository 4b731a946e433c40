//! Ordered policy rules, first match wins: each rule matches on groups
//! (any/all), certificate fields (issuer, OU, SAN), the authenticated
//! identity, the NAS client name, Called-Station-Id or its SSID, and the
//! realm; its action accepts with reply attributes or rejects. No match →
//! the default action (reject unless configured).
//!
//! Compiled once from configuration (unknown attributes and bad values are
//! errors naming the rule); evaluation is sans-I/O and must not consult
//! the directory (the engine passes the entry in).

use serde::Deserialize;

use super::pattern::Pattern;
use super::reply::{self, ReplyAttribute, Vars};
use super::{Decision, Entry, Group, Subject};
use crate::proto::dictionary::Dictionary;

/// One pattern or a list of them, so `ssid = "Corp"` and
/// `ssid = ["Corp", "Corp-5G"]` both read naturally.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl Default for OneOrMany {
    fn default() -> Self {
        OneOrMany::Many(Vec::new())
    }
}

impl OneOrMany {
    fn patterns(&self) -> Vec<Pattern> {
        match self {
            OneOrMany::One(s) => vec![Pattern::new(s)],
            OneOrMany::Many(v) => v.iter().map(|s| Pattern::new(s)).collect(),
        }
    }
}

/// A rule as written in `[[authz.rule]]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRule {
    pub name: String,
    /// "accept" (the default) or "reject".
    pub action: String,
    pub groups_any: OneOrMany,
    pub groups_all: OneOrMany,
    pub identity: OneOrMany,
    pub issuer: OneOrMany,
    pub ou: OneOrMany,
    pub san: OneOrMany,
    pub nas: OneOrMany,
    pub ssid: OneOrMany,
    pub called_station: OneOrMany,
    pub realm: OneOrMany,
    pub vlan: Option<u16>,
    pub reply: Vec<String>,
}

#[derive(Debug, Clone)]
enum Action {
    Accept(Vec<ReplyAttribute>),
    Reject,
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    groups_any: Vec<Pattern>,
    groups_all: Vec<Pattern>,
    identity: Vec<Pattern>,
    issuer: Vec<Pattern>,
    ou: Vec<Pattern>,
    san: Vec<Pattern>,
    nas: Vec<Pattern>,
    ssid: Vec<Pattern>,
    called_station: Vec<Pattern>,
    realm: Vec<Pattern>,
    action: Action,
}

/// The compiled rule list.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: Vec<Rule>,
    default_accept: bool,
}

/// The label for decisions no rule made.
pub const DEFAULT_RULE: &str = "default";

impl Policy {
    /// Compiles the rules; problems come back as `authz.rule[i] (name).key:
    /// problem` lines.
    pub fn compile(
        raw: &[RawRule],
        default_accept: bool,
        dict: &Dictionary,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut rules = Vec::new();
        let mut names = std::collections::HashSet::new();
        for (i, r) in raw.iter().enumerate() {
            let name = if r.name.trim().is_empty() {
                format!("rule{}", i + 1)
            } else {
                r.name.clone()
            };
            let key = |field: &str| format!("authz.rule[{i}] ({name}).{field}");
            if !names.insert(name.clone()) {
                problems.push(format!("{}: the name is used twice", key("name")));
            }
            if name == DEFAULT_RULE {
                problems.push(format!("{}: \"default\" is reserved", key("name")));
            }
            let action = match r.action.as_str() {
                "" | "accept" => {
                    let mut attrs = Vec::new();
                    if let Some(v) = r.vlan {
                        if (1..=4094).contains(&v) {
                            match reply::vlan(dict, v) {
                                Ok(a) => attrs.extend(a),
                                Err(e) => problems.push(format!("{}: {e}", key("vlan"))),
                            }
                        } else {
                            problems.push(format!("{}: {v} is not 1..4094", key("vlan")));
                        }
                    }
                    for (j, line) in r.reply.iter().enumerate() {
                        match ReplyAttribute::parse(dict, line) {
                            Ok(a) => attrs.push(a),
                            Err(e) => {
                                problems.push(format!("{}: {e}", key(&format!("reply[{j}]"))))
                            }
                        }
                    }
                    Action::Accept(attrs)
                }
                "reject" => {
                    if r.vlan.is_some() || !r.reply.is_empty() {
                        problems.push(format!(
                            "{}: a reject rule sends no reply attributes",
                            key("reply")
                        ));
                    }
                    Action::Reject
                }
                other => {
                    problems.push(format!(
                        "{}: {other:?} is not \"accept\" or \"reject\"",
                        key("action")
                    ));
                    Action::Reject
                }
            };
            rules.push(Rule {
                name,
                groups_any: r.groups_any.patterns(),
                groups_all: r.groups_all.patterns(),
                identity: r.identity.patterns(),
                issuer: r.issuer.patterns(),
                ou: r.ou.patterns(),
                san: r.san.patterns(),
                nas: r.nas.patterns(),
                ssid: r.ssid.patterns(),
                called_station: r.called_station.patterns(),
                realm: r.realm.patterns(),
                action,
            });
        }
        if problems.is_empty() {
            Ok(Policy {
                rules,
                default_accept,
            })
        } else {
            Err(problems)
        }
    }

    /// The first matching rule's decision, with the rule's name (a metric
    /// label: rule names come from configuration, so they are bounded).
    pub fn evaluate(&self, subject: &Subject, entry: &Entry) -> (&str, Decision) {
        let names: Vec<&str> = entry.groups.iter().map(|g| g.name.as_str()).collect();
        let facts = Facts::of(subject);
        for rule in &self.rules {
            let Some(group) = rule.matches(&facts, entry) else {
                continue;
            };
            let decision = match &rule.action {
                Action::Reject => Decision::Reject {
                    reason: "policy_reject",
                    detail: format!("rule {:?} rejects", rule.name),
                },
                Action::Accept(attrs) => {
                    let vars = Vars {
                        identity: &subject.identity,
                        group: group.map(|g| g.name.as_str()).unwrap_or_default(),
                        attributes: Some(&entry.attributes),
                    };
                    accept(&rule.name, attrs, &vars, &names)
                }
            };
            return (&rule.name, decision);
        }
        let decision = if self.default_accept {
            accept(DEFAULT_RULE, &[], &Vars::default(), &names)
        } else {
            Decision::Reject {
                reason: "no_matching_rule",
                detail: format!("no rule matches (groups {names:?})"),
            }
        };
        (DEFAULT_RULE, decision)
    }

    /// Rule names and the default, to pre-create metric series.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .map(|r| r.name.as_str())
            .chain([DEFAULT_RULE])
    }
}

fn accept(rule: &str, attrs: &[ReplyAttribute], vars: &Vars<'_>, groups: &[&str]) -> Decision {
    let mut attributes = Vec::with_capacity(attrs.len());
    for a in attrs {
        match a.encode(vars) {
            Ok(pair) => attributes.push(pair),
            Err(e) => {
                return Decision::Reject {
                    reason: "reply_attribute",
                    detail: format!("{}: {e}", a.name),
                };
            }
        }
    }
    Decision::Accept {
        rule: rule.to_string(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        attributes,
    }
}

fn any(patterns: &[Pattern], values: &[&str]) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| values.iter().any(|v| p.matches(v)))
}

fn group_matches(p: &Pattern, g: &Group) -> bool {
    p.matches(&g.name) || g.dn.as_deref().is_some_and(|dn| p.matches(dn))
}

impl Rule {
    /// None when the rule does not apply; otherwise the group `{group}`
    /// stands for (the first one the rule matched on, else the entry's
    /// first).
    fn matches<'e>(&self, facts: &Facts<'_>, entry: &'e Entry) -> Option<Option<&'e Group>> {
        let mut group = None;
        if !self.groups_any.is_empty() {
            group = Some(
                entry
                    .groups
                    .iter()
                    .find(|g| self.groups_any.iter().any(|p| group_matches(p, g)))?,
            );
        }
        for p in &self.groups_all {
            let g = entry.groups.iter().find(|g| group_matches(p, g))?;
            group.get_or_insert(g);
        }
        let f = facts;
        let ok = any(&self.identity, &[f.identity])
            && any(&self.issuer, &[f.issuer])
            && any(&self.ou, &f.ous)
            && any(&self.san, &f.sans)
            && any(&self.nas, &[f.nas])
            && any(&self.realm, &[f.realm])
            && (self.called_station.is_empty()
                || f.called.is_some_and(|v| any(&self.called_station, &[v])))
            && (self.ssid.is_empty() || f.ssid.is_some_and(|v| any(&self.ssid, &[v])));
        ok.then_some(group.or(entry.groups.first()))
    }
}

/// What rules match on, gathered once per evaluation.
struct Facts<'a> {
    identity: &'a str,
    issuer: &'a str,
    ous: Vec<&'a str>,
    sans: Vec<&'a str>,
    nas: &'a str,
    realm: &'a str,
    called: Option<&'a str>,
    ssid: Option<&'a str>,
}

impl<'a> Facts<'a> {
    fn of(s: &'a Subject) -> Self {
        let c = &s.certificate;
        let called = s.called_station.as_deref();
        Facts {
            identity: &s.identity,
            issuer: &c.issuer,
            ous: c.ous.iter().map(String::as_str).collect(),
            sans: c
                .emails
                .iter()
                .chain(&c.upns)
                .chain(&c.dns)
                .chain(&c.uris)
                .map(String::as_str)
                .collect(),
            nas: &s.nas,
            realm: realm(s),
            called,
            ssid: called.and_then(ssid),
        }
    }
}

/// The realm of the authenticated (certificate) identity; none when it
/// has no `@`. Never the outer EAP identity: the peer chooses that freely,
/// so a rule keyed on it would let any certificate pick its realm.
fn realm(s: &Subject) -> &str {
    s.identity
        .rsplit_once('@')
        .map(|(_, r)| r)
        .unwrap_or_default()
}

/// The SSID in a Called-Station-Id of the IEEE 802.1X RADIUS usage form
/// (RFC 3580 §3.20): `AA-BB-CC-DD-EE-FF:SSID`, also with `:` separators or
/// none.
pub fn ssid(called_station: &str) -> Option<&str> {
    let b = called_station.as_bytes();
    let mac_len = if b.len() > 17
        && b[..17].iter().enumerate().all(|(i, c)| {
            if i % 3 == 2 {
                *c == b'-' || *c == b':'
            } else {
                c.is_ascii_hexdigit()
            }
        })
        && b[17] == b':'
    {
        17
    } else if b.len() > 12 && b[..12].iter().all(u8::is_ascii_hexdigit) && b[12] == b':' {
        12
    } else {
        return None;
    };
    Some(&called_station[mac_len + 1..]).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tls::identity::CertIdentity;

    fn rules(text: &str) -> Result<Policy, Vec<String>> {
        #[derive(Deserialize)]
        struct Wrap {
            rule: Vec<RawRule>,
        }
        let w: Wrap = toml::from_str(text).expect("toml");
        Policy::compile(&w.rule, false, &Dictionary::shipped())
    }

    fn subject() -> Subject {
        Subject {
            identity: "alice@example.org".into(),
            outer_identity: "anonymous@example.org".into(),
            certificate: std::sync::Arc::new(CertIdentity {
                issuer: "CN=Example Issuing CA,O=Example".into(),
                ous: vec!["Engineering".into()],
                emails: vec!["alice@example.org".into()],
                ..Default::default()
            }),
            nas: "ap-floor3".into(),
            called_station: Some("02-00-00-00-00-01:Corp".into()),
            calling_station: None,
            resumed: false,
        }
    }

    fn entry(groups: &[&str]) -> Entry {
        Entry {
            dn: "uid=alice,dc=example,dc=org".into(),
            groups: groups
                .iter()
                .map(|g| Group {
                    name: g.to_string(),
                    dn: Some(format!("cn={g},ou=groups,dc=example,dc=org")),
                })
                .collect(),
            attributes: Default::default(),
        }
    }

    const RULES: &str = r#"
        [[rule]]
        name = "quarantine"
        groups_any = "quarantined"
        action = "reject"
        [[rule]]
        name = "admins-on-corp"
        groups_all = ["staff", "cn=netadmins,ou=groups,*"]
        ssid = "corp"
        vlan = 10
        reply = ["Cisco-AVPair = shell:priv-lvl=15", "Class = {group}"]
        [[rule]]
        name = "staff"
        groups_any = ["staff", "contractors"]
        issuer = "CN=Example Issuing CA*"
        realm = "example.org"
        reply = ["Filter-Id = {group}"]
        [[rule]]
        name = "guest-ssid"
        ssid = "Guest"
        nas = "ap-*"
        reply = ["Aruba-User-Role = guest"]
    "#;

    #[test]
    fn first_match_wins() {
        let p = rules(RULES).expect("valid");
        let s = subject();
        let (rule, d) = p.evaluate(&s, &entry(&["staff", "quarantined"]));
        assert_eq!(rule, "quarantine");
        assert!(matches!(
            d,
            Decision::Reject {
                reason: "policy_reject",
                ..
            }
        ));

        let (rule, d) = p.evaluate(&s, &entry(&["netadmins", "staff"]));
        assert_eq!(rule, "admins-on-corp");
        let Decision::Accept { attributes, .. } = d else {
            panic!("{d:?}")
        };
        assert_eq!(attributes.len(), 5);
        // {group} is the first group the rule matched on.
        assert_eq!(attributes[4], (25, b"staff".to_vec()));

        let (rule, d) = p.evaluate(&s, &entry(&["contractors"]));
        assert_eq!(rule, "staff");
        assert_eq!(
            d,
            Decision::Accept {
                rule: "staff".into(),
                groups: vec!["contractors".into()],
                attributes: vec![(11, b"contractors".to_vec())]
            }
        );

        // Same admin off the corporate SSID falls through to "staff".
        let mut off = subject();
        off.called_station = Some("02:00:00:00:00:01:Corp-Guest".into());
        assert_eq!(p.evaluate(&off, &entry(&["netadmins", "staff"])).0, "staff");

        let mut guest = subject();
        guest.called_station = Some("020000000001:guest".into());
        assert_eq!(p.evaluate(&guest, &entry(&[])).0, "guest-ssid");
        guest.nas = "vpn-1".into();
        let (rule, d) = p.evaluate(&guest, &entry(&[]));
        assert_eq!(rule, DEFAULT_RULE);
        assert!(matches!(
            d,
            Decision::Reject {
                reason: "no_matching_rule",
                ..
            }
        ));
    }

    #[test]
    fn certificate_and_realm_matchers() {
        let p = rules(
            r#"
            [[rule]]
            name = "eng"
            ou = "engineering"
            san = "*@example.org"
            identity = "alice@*"
            "#,
        )
        .expect("valid");
        assert_eq!(p.evaluate(&subject(), &entry(&[])).0, "eng");
        let mut other = subject();
        std::sync::Arc::make_mut(&mut other.certificate).ous = vec!["Sales".into()];
        assert_eq!(p.evaluate(&other, &entry(&[])).0, DEFAULT_RULE);
        let p = rules("[[rule]]\nname = \"r\"\nrealm = \"example.net\"\n").expect("valid");
        assert_eq!(p.evaluate(&subject(), &entry(&[])).0, DEFAULT_RULE);
        // A certificate identity without a realm has none, whatever outer
        // identity the peer chose.
        let mut bare = subject();
        bare.identity = "alice".into();
        bare.outer_identity = "anonymous@example.net".into();
        assert_eq!(p.evaluate(&bare, &entry(&[])).0, DEFAULT_RULE);
    }

    #[test]
    fn problems_name_the_rule() {
        let e = rules(
            r#"
            [[rule]]
            name = "bad"
            vlan = 5000
            reply = ["Bogus-Attr = 1", "Session-Timeout = soon"]
            [[rule]]
            action = "maybe"
            [[rule]]
            name = "bad"
            action = "reject"
            reply = ["Filter-Id = x"]
            "#,
        )
        .expect_err("invalid")
        .join("\n");
        assert!(
            e.contains("authz.rule[0] (bad).vlan: 5000 is not 1..4094"),
            "{e}"
        );
        assert!(
            e.contains("authz.rule[0] (bad).reply[0]: unknown attribute \"Bogus-Attr\""),
            "{e}"
        );
        assert!(
            e.contains("authz.rule[0] (bad).reply[1]: Session-Timeout"),
            "{e}"
        );
        assert!(e.contains("authz.rule[1] (rule2).action: \"maybe\""), "{e}");
        assert!(
            e.contains("authz.rule[2] (bad).name: the name is used twice"),
            "{e}"
        );
        assert!(
            e.contains("authz.rule[2] (bad).reply: a reject rule"),
            "{e}"
        );
    }

    #[test]
    fn ssid_forms() {
        assert_eq!(ssid("02-00-00-00-00-01:Corp"), Some("Corp"));
        assert_eq!(ssid("02:00:00:00:00:01:Co:rp"), Some("Co:rp"));
        assert_eq!(ssid("020000000001:Corp"), Some("Corp"));
        assert_eq!(ssid("02-00-00-00-00-01:"), None);
        assert_eq!(ssid("vpn.example.org"), None);
    }
}
