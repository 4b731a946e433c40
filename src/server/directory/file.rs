//! The file directory (`users.toml`): identities to groups, a disabled
//! flag, and attributes for reply templates. The embedded default that
//! needs no LDAP.
//!
//! Built once from parsed TOML (the configuration module reads the file);
//! answering is a map look-up without I/O. It must not decide reply
//! attributes: that is the policy's job.

use std::collections::HashMap;

use serde::Deserialize;

use super::{Directory, LookupFuture};
use crate::proto::authz::{Entry, Group, Lookup};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawUsers {
    #[serde(default)]
    users: HashMap<String, RawUser>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    disabled: bool,
    /// Values for `{attr:NAME}` templates.
    #[serde(default)]
    attributes: HashMap<String, String>,
}

#[derive(Debug)]
pub struct FileDirectory {
    /// Keyed by lower-cased identity.
    users: HashMap<String, Lookup>,
}

impl FileDirectory {
    pub fn new(raw: RawUsers) -> Self {
        let users = raw
            .users
            .into_iter()
            .map(|(id, u)| {
                let dn = format!("user={id}");
                let lookup = if u.disabled {
                    Lookup::Disabled { dn }
                } else {
                    Lookup::Found(Entry {
                        dn,
                        groups: u.groups.iter().map(|g| Group::named(g)).collect(),
                        attributes: u
                            .attributes
                            .into_iter()
                            .map(|(k, v)| (k.to_ascii_lowercase(), vec![v]))
                            .collect(),
                    })
                };
                (crate::proto::authz::fold(&id), lookup)
            })
            .collect();
        FileDirectory { users }
    }

    /// The answer, synchronously; identities compare without regard to
    /// ASCII case (Unicode folding would merge distinct identities).
    pub fn find(&self, identity: &str) -> Lookup {
        self.users
            .get(&crate::proto::authz::fold(identity))
            .cloned()
            .unwrap_or(Lookup::NotFound)
    }
}

impl Directory for FileDirectory {
    fn lookup<'a>(
        &'a self,
        identity: &'a str,
        _certificate: Option<&'a crate::proto::tls::identity::CertIdentity>,
    ) -> LookupFuture<'a> {
        Box::pin(std::future::ready(Ok(self.find(identity))))
    }

    fn name(&self) -> &'static str {
        "file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_groups_attributes_and_disabled() {
        let raw: RawUsers = toml::from_str(
            r#"
            [users."Alice@example.org"]
            groups = ["staff"]
            attributes = { Department = "R&D" }
            [users."eve@example.org"]
            disabled = true
            [users."kim@example.org"]
            groups = ["netadmins"]
            "#,
        )
        .expect("toml");
        let d = FileDirectory::new(raw);
        match d.find("alice@EXAMPLE.org") {
            Lookup::Found(e) => {
                assert_eq!(e.groups, [Group::named("staff")]);
                assert_eq!(e.attributes["department"], ["R&D"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(d.find("eve@example.org"), Lookup::Disabled { .. }));
        // The Kelvin sign is not a K: only ASCII case folds.
        assert!(matches!(d.find("KIM@example.org"), Lookup::Found(_)));
        assert_eq!(d.find("\u{212a}im@example.org"), Lookup::NotFound);
        assert_eq!(d.find("mallory@example.org"), Lookup::NotFound);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = toml::from_str::<RawUsers>("[users.a]\ngroup = [\"x\"]\n").expect_err("typo");
        assert!(e.to_string().contains("unknown field `group`"), "{e}");
    }
}
