//! LDAP search filter templates: `(|(userPrincipalName={identity})(mail={identity}))`,
//! `(&(objectClass=groupOfNames)(member={dn}))`. Every value put into a
//! filter is escaped per RFC 4515 (`*`, `(`, `)`, `\`, NUL), so an identity
//! such as `*)(uid=*` matches nothing instead of everything.
//!
//! Sans-I/O; checked once at configuration time.

use ldap3::ldap_escape;

/// A checked filter template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterTemplate {
    text: String,
}

/// Placeholders a template may use.
pub const PLACEHOLDERS: [&str; 4] = ["identity", "user", "realm", "dn"];

/// Certificate facts a user filter may use too (strong mapping): see
/// `CertIdentity::facts`.
pub const CERTIFICATE_PLACEHOLDERS: [&str; 7] = [
    "serial",
    "issuer",
    "issuer_serial_ad",
    "sha1",
    "sha256",
    "san_uri",
    "san_dns",
];

impl FilterTemplate {
    /// Checks balanced parentheses and known placeholders; `allowed` is the
    /// subset of `PLACEHOLDERS` this filter may use.
    pub fn parse(text: &str, allowed: &[&str]) -> Result<Self, String> {
        let t = text.trim();
        if !(t.starts_with('(') && t.ends_with(')')) {
            return Err(format!("{t:?} is not a parenthesised LDAP filter"));
        }
        let mut depth = 0i32;
        for c in t.chars() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth < 0 {
                        return Err(format!("{t:?}: unbalanced parentheses"));
                    }
                }
                _ => {}
            }
        }
        if depth != 0 {
            return Err(format!("{t:?}: unbalanced parentheses"));
        }
        let mut rest = t;
        while let Some(open) = rest.find('{') {
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("{t:?}: unclosed {{"))?;
            let name = &rest[open + 1..open + close];
            if !allowed.contains(&name) {
                return Err(format!(
                    "{t:?}: unknown placeholder {{{name}}} (this filter may use {})",
                    allowed
                        .iter()
                        .map(|a| format!("{{{a}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            rest = &rest[open + close + 1..];
        }
        Ok(FilterTemplate {
            text: t.to_string(),
        })
    }

    /// Whether the filter depends on the request at all (a user filter
    /// without one would find the same entry for everyone).
    pub fn has_placeholders(&self) -> bool {
        self.text.contains('{')
    }

    /// Whether the filter uses any of `names`.
    pub fn uses_any(&self, names: &[&str]) -> bool {
        names
            .iter()
            .any(|n| self.text.contains(&format!("{{{n}}}")))
    }

    /// The filter with each placeholder replaced by its escaped value.
    pub fn expand(&self, values: &[(&str, &str)]) -> String {
        let mut out = String::with_capacity(self.text.len() + 32);
        let mut rest = self.text.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            let name = &rest[open + 1..open + close];
            if let Some((_, v)) = values.iter().find(|(n, _)| *n == name) {
                out.push_str(&ldap_escape(*v));
            }
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_metacharacters() {
        let f = FilterTemplate::parse("(|(uid={user})(mail={identity}))", &PLACEHOLDERS)
            .expect("valid");
        assert_eq!(
            f.expand(&[("identity", "*)(uid=*"), ("user", "a\\b")]),
            "(|(uid=a\\5cb)(mail=\\2a\\29\\28uid=\\2a))"
        );
        assert_eq!(
            f.expand(&[("identity", "alice@example.org"), ("user", "alice")]),
            "(|(uid=alice)(mail=alice@example.org))"
        );
    }

    #[test]
    fn refuses_bad_templates() {
        for (t, needle) in [
            ("uid={identity}", "not a parenthesised"),
            ("(&(uid={identity})", "unbalanced"),
            ("(uid={identity}))(b=c)", "unbalanced"),
            ("(uid={name})", "unknown placeholder {name}"),
            ("(member={dn})", "unknown placeholder {dn}"),
        ] {
            let e = FilterTemplate::parse(t, &["identity"]).expect_err(t);
            assert!(e.contains(needle), "{t}: {e}");
        }
    }

    #[test]
    fn placeholders_are_optional_but_visible() {
        let f = FilterTemplate::parse("(employeeType=disabled)", &[]).expect("valid");
        assert!(!f.has_placeholders());
        assert_eq!(f.expand(&[]), "(employeeType=disabled)");
    }
}
