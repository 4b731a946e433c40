//! Case-insensitive glob patterns (`*` any run, `?` one character) for
//! policy rules: issuers, OUs, SANs, NAS names, SSIDs.
//!
//! Case is folded for ASCII letters only, as everywhere identities are
//! compared: Unicode folding maps distinct names together (the Kelvin sign
//! K lowercases to `k`), so a certificate could match a rule written for
//! someone else.
//!
//! Hand-written because the need is a dozen lines and the `regex` crate
//! would be a heavy dependency for it; globs are also what people write in
//! controller configurations. Sans-I/O; it must not allocate per match.

/// A compiled pattern, ASCII-lower-cased once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: Vec<char>,
}

impl Pattern {
    pub fn new(text: &str) -> Self {
        Pattern {
            text: text.chars().map(|c| c.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether `value` matches the whole pattern, ignoring ASCII case.
    pub fn matches(&self, value: &str) -> bool {
        if value.is_ascii() {
            // Identities, DNs and SSIDs almost always are: no copy needed.
            glob(&self.text, value.as_bytes(), |b| {
                char::from(b.to_ascii_lowercase())
            })
        } else {
            let value: Vec<char> = value.chars().collect();
            glob(&self.text, &value, |c| c.to_ascii_lowercase())
        }
    }
}

/// Iterative matching with single-star backtracking: linear in practice,
/// never exponential. `lower` gives a value element as a lower-case char.
fn glob<T: Copy>(p: &[char], v: &[T], lower: impl Fn(T) -> char) -> bool {
    let (mut pi, mut vi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while vi < v.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, vi));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == lower(v[vi]) => {
                pi += 1;
                vi += 1;
            }
            _ => match star {
                Some((sp, sv)) => {
                    pi = sp + 1;
                    vi = sv + 1;
                    star = Some((sp, sv + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    #[test]
    fn globs() {
        let m = |p: &str, v: &str| Pattern::new(p).matches(v);
        assert!(m("corp", "CORP"));
        assert!(!m("corp", "corp-guest"));
        assert!(m("corp*", "corp-guest"));
        assert!(m("*@example.org", "alice@EXAMPLE.org"));
        assert!(!m("*@example.org", "alice@example.org.evil"));
        assert!(m("ap-??-*", "ap-12-floor3"));
        assert!(!m("ap-??-*", "ap-1-floor3"));
        assert!(m("*", ""));
        assert!(!m("?", ""));
        assert!(m("CN=*,O=Example", "cn=Issuing CA,o=example"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
        assert!(m("*örebro*", "CN=öREBRO CA"));
        assert!(!m("ö", "o"));
        // Only ASCII letters fold: Ö is not ö, and the Kelvin sign is not k.
        assert!(!m("*örebro*", "CN=ÖREBRO CA"));
        assert!(!m("kim@*", "\u{212a}im@example.org"));
    }
}
