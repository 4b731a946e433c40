//! Distinguished names as far as group handling needs them (RFC 4514): the
//! RDNs of a DN split at unescaped commas, a group's short name from its
//! first RDN, and whether a DN lies under a base.
//!
//! Comparison folds ASCII case and the spaces around RDNs only; it does not
//! know attribute syntaxes or OID forms. That is enough to compare the DNs
//! one directory hands out with the base written for it, and errs on the
//! side of "not under" for anything unusual.

/// The RDNs of `dn` in order, trimmed; a `\,` inside a value stays in it.
fn rdns(dn: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in dn.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                out.push(dn[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(dn[start..].trim());
    out
}

/// The value of a DN's first RDN (`cn=Net Admins,ou=groups,…` → `Net
/// Admins`), the usual short name of a group.
pub fn first_rdn_value(dn: &str) -> &str {
    let first = rdns(dn).first().copied().unwrap_or(dn);
    first
        .split_once('=')
        .map(|(_, v)| v.trim())
        .unwrap_or(first)
}

/// Whether `dn` is an entry below `base` (not `base` itself).
pub fn is_under(dn: &str, base: &str) -> bool {
    let (dn, base) = (rdns(dn), rdns(base));
    let same = |a: &str, b: &str| {
        let norm = |r: &str| -> String {
            match r.split_once('=') {
                Some((k, v)) => format!("{}={}", k.trim(), v.trim()),
                None => r.to_string(),
            }
            .to_ascii_lowercase()
        };
        norm(a) == norm(b)
    };
    dn.len() > base.len()
        && !base.iter().any(|r| r.is_empty())
        && dn[dn.len() - base.len()..]
            .iter()
            .zip(&base)
            .all(|(a, b)| same(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdn_values() {
        assert_eq!(
            first_rdn_value("cn=Net Admins,ou=groups,dc=x"),
            "Net Admins"
        );
        assert_eq!(first_rdn_value("cn=Smith\\, John,ou=x"), "Smith\\, John");
        assert_eq!(first_rdn_value("plain"), "plain");
    }

    #[test]
    fn under_a_base() {
        let base = "ou=groups,dc=example,dc=org";
        assert!(is_under("cn=staff,ou=groups,dc=example,dc=org", base));
        assert!(is_under("CN=Staff, OU=Groups, DC=Example, DC=org", base));
        assert!(is_under("cn=a,cn=b,ou=groups,dc=example,dc=org", base));
        assert!(!is_under(base, base), "the base itself holds no group");
        assert!(!is_under("cn=netadmins,ou=sales,dc=example,dc=org", base));
        assert!(!is_under("cn=x,ou=groups,dc=example,dc=org,dc=evil", base));
        // An escaped comma does not make a fake RDN.
        assert!(!is_under("cn=x\\,ou=groups,dc=example,dc=org", base));
        assert!(!is_under("cn=x", ""));
    }
}
