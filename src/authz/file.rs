//! The file directory (`users.toml`): identities to groups, groups to reply
//! attributes, and a default for identities not listed. The embedded
//! default that needs no LDAP.
//!
//! Compiled once from parsed TOML (the configuration module reads the
//! file); answering is a map look-up without I/O.

use std::collections::HashMap;

use serde::Deserialize;

use super::reply::{self, ReplyAttribute, Vars};
use super::{Authorizer, Decision, DecisionFuture, Subject};
use crate::dictionary::Dictionary;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawUsers {
    #[serde(default)]
    default: RawDefault,
    #[serde(default)]
    users: HashMap<String, RawUser>,
    #[serde(default)]
    groups: HashMap<String, RawGroup>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefault {
    #[serde(default)]
    accept: bool,
    #[serde(default)]
    groups: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    disabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    vlan: Option<u16>,
    #[serde(default)]
    reply: Vec<String>,
}

#[derive(Debug)]
struct User {
    groups: Vec<String>,
    disabled: bool,
}

#[derive(Debug)]
pub struct FileDirectory {
    /// Keyed by lower-cased identity.
    users: HashMap<String, User>,
    groups: HashMap<String, Vec<ReplyAttribute>>,
    default_groups: Option<Vec<String>>,
}

impl FileDirectory {
    /// Checks every group reference and attribute; problems come back as
    /// `key: problem` lines.
    pub fn compile(raw: RawUsers, dict: &Dictionary) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut groups = HashMap::new();
        for (name, g) in raw.groups {
            let mut attrs = Vec::new();
            if let Some(v) = g.vlan {
                if !(1..=4094).contains(&v) {
                    problems.push(format!("groups.{name}.vlan: {v} is not 1..4094"));
                } else {
                    match reply::vlan(dict, v) {
                        Ok(a) => attrs.extend(a),
                        Err(e) => problems.push(format!("groups.{name}.vlan: {e}")),
                    }
                }
            }
            for (i, line) in g.reply.iter().enumerate() {
                match ReplyAttribute::parse(dict, line) {
                    Ok(a) => attrs.push(a),
                    Err(e) => problems.push(format!("groups.{name}.reply[{i}]: {e}")),
                }
            }
            groups.insert(name, attrs);
        }
        let mut check = |key: String, list: &[String]| {
            for g in list {
                if !groups.contains_key(g) {
                    problems.push(format!("{key}: group {g:?} is not defined under [groups]"));
                }
            }
        };
        check("default.groups".into(), &raw.default.groups);
        for (id, u) in &raw.users {
            check(format!("users.{id:?}.groups"), &u.groups);
        }
        if !problems.is_empty() {
            problems.sort();
            return Err(problems);
        }
        Ok(FileDirectory {
            users: raw
                .users
                .into_iter()
                .map(|(id, u)| {
                    (
                        id.to_lowercase(),
                        User {
                            groups: u.groups,
                            disabled: u.disabled,
                        },
                    )
                })
                .collect(),
            groups,
            default_groups: raw.default.accept.then_some(raw.default.groups),
        })
    }

    /// The decision, synchronously.
    pub fn decide(&self, subject: &Subject) -> Decision {
        let groups = match self.users.get(&subject.identity.to_lowercase()) {
            Some(u) if u.disabled => {
                return Decision::Reject {
                    reason: "disabled",
                    detail: format!("{} is disabled", subject.identity),
                };
            }
            Some(u) => &u.groups,
            None => match &self.default_groups {
                Some(g) => g,
                None => {
                    return Decision::Reject {
                        reason: "unknown_identity",
                        detail: format!(
                            "{} is not in the directory and the default is reject",
                            subject.identity
                        ),
                    };
                }
            },
        };
        let mut attributes = Vec::new();
        for g in groups {
            let vars = Vars {
                identity: &subject.identity,
                group: g,
            };
            for a in self.groups.get(g).into_iter().flatten() {
                match a.encode(&vars) {
                    Ok(pair) => attributes.push(pair),
                    Err(e) => {
                        return Decision::Reject {
                            reason: "reply_attribute",
                            detail: format!("{}: {e}", a.name),
                        };
                    }
                }
            }
        }
        Decision::Accept {
            groups: groups.clone(),
            attributes,
        }
    }
}

impl Authorizer for FileDirectory {
    fn authorize<'a>(&'a self, subject: &'a Subject) -> DecisionFuture<'a> {
        let d = self.decide(subject);
        Box::pin(std::future::ready(d))
    }

    fn name(&self) -> &'static str {
        "file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict() -> Dictionary {
        Dictionary::shipped()
    }

    fn subject(identity: &str) -> Subject {
        Subject {
            identity: identity.into(),
            outer_identity: String::new(),
            certificate: Default::default(),
            nas: "nas".into(),
            called_station: None,
            calling_station: None,
            resumed: false,
        }
    }

    fn directory(text: &str) -> Result<FileDirectory, Vec<String>> {
        let raw: RawUsers = toml::from_str(text).expect("toml");
        FileDirectory::compile(raw, &dict())
    }

    #[test]
    fn users_groups_default_and_disabled() {
        let d = directory(
            r#"
            [users."Alice@example.org"]
            groups = ["staff"]
            [users."eve@example.org"]
            disabled = true
            [groups.staff]
            vlan = 20
            reply = ["Filter-Id = {group}"]
            "#,
        )
        .expect("valid");
        match d.decide(&subject("alice@EXAMPLE.org")) {
            Decision::Accept { groups, attributes } => {
                assert_eq!(groups, ["staff"]);
                assert_eq!(attributes.len(), 4);
                assert_eq!(attributes[3], (11, b"staff".to_vec()));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            d.decide(&subject("eve@example.org")),
            Decision::Reject {
                reason: "disabled",
                ..
            }
        ));
        assert!(matches!(
            d.decide(&subject("mallory@example.org")),
            Decision::Reject {
                reason: "unknown_identity",
                ..
            }
        ));
    }

    #[test]
    fn problems_name_their_keys() {
        let e = directory(
            r#"
            [default]
            accept = true
            groups = ["nobody"]
            [groups.g]
            vlan = 5000
            reply = ["Bogus-Attr = 1"]
            "#,
        )
        .expect_err("invalid")
        .join("\n");
        assert!(e.contains("default.groups: group \"nobody\""), "{e}");
        assert!(e.contains("groups.g.vlan: 5000"), "{e}");
        assert!(e.contains("groups.g.reply[0]: unknown attribute"), "{e}");
    }
}
