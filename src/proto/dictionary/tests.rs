use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(text.as_bytes()).expect("write");
    path
}

#[test]
fn reads_every_keyword() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        dir.path(),
        "dictionary.vendor",
        "VENDOR Example 9999 format=2,1\nBEGIN-VENDOR Example\nATTRIBUTE Example-Role 1 string\nATTRIBUTE Example-Caps 2 tlv\nBEGIN-TLV Example-Caps\nATTRIBUTE Example-Cap-A 1 integer\nEND-TLV Example-Caps\nEND-VENDOR Example\n",
    );
    let main = write(
        dir.path(),
        "dictionary",
        "# comment\n\nATTRIBUTE User-Name 1 string\nVALUE Service-Type Login-User 1 # before its attribute\nATTRIBUTE Service-Type 6 integer\nATTRIBUTE Tunnel-Type 64 integer has_tag\nATTRIBUTE Tunnel-Password 69 string has_tag,encrypt=2\nATTRIBUTE Secret-Thing 200 octets[16]\nATTRIBUTE Ext-1 241.1 integer\nATTRIBUTE Legacy 0x0C integer\n$INCLUDE dictionary.vendor\n$INCLUDE- dictionary.absent\n",
    );
    let d = Dictionary::from_file(&main).expect("loads");
    assert_eq!(d.attribute("user-name").map(|a| a.number()), Some(1));
    assert_eq!(d.value("Service-Type", "login-user"), Some(1));
    let tt = d.attribute("Tunnel-Type").expect("defined");
    assert!(tt.flags.has_tag);
    assert_eq!(
        d.attribute("Tunnel-Password").map(|a| a.flags.encrypt),
        Some(2)
    );
    assert_eq!(
        d.attribute("Secret-Thing").and_then(|a| a.flags.fixed_len),
        Some(16)
    );
    assert_eq!(
        d.attribute("Ext-1").map(|a| a.oid.clone()),
        Some(vec![241, 1])
    );
    assert_eq!(d.attribute("Legacy").map(|a| a.number()), Some(12));
    let role = d.attribute("Example-Role").expect("vendor attribute");
    assert_eq!((role.vendor, role.number()), (9999, 1));
    assert_eq!(
        d.attribute_by_number(9999, 1).map(|a| a.name.as_str()),
        Some("Example-Role")
    );
    assert_eq!(
        d.attribute("Example-Cap-A").map(|a| a.oid.clone()),
        Some(vec![2, 1])
    );
    assert_eq!(
        d.vendor_by_name("example")
            .map(|v| (v.type_size, v.length_size)),
        Some((2, 1))
    );
}

#[test]
fn malformed_lines_name_file_and_line() {
    let cases = [
        ("ATTRIBUTE Foo", 1, "needs a name"),
        ("ATTRIBUTE Foo abc string", 1, "not a number"),
        ("ATTRIBUTE Foo 1 float", 1, "type \"float\""),
        (
            "ATTRIBUTE Foo 1 string bogus_flag",
            1,
            "flag \"bogus_flag\"",
        ),
        ("ATTRIBUTE Foo 1 string encrypt=7", 1, "encrypt=7"),
        ("ATTRIBUTE Foo 1 ipaddr has_tag", 1, "cannot carry a tag"),
        ("\nVALUE Nope Name 1", 2, "unknown attribute"),
        ("BEGIN-VENDOR Nobody", 1, "unknown vendor"),
        ("END-VENDOR X", 1, "without BEGIN-VENDOR"),
        ("VENDOR V 12 format=3,1", 1, "VENDOR format"),
        ("FROB x", 1, "unknown keyword"),
        ("ATTRIBUTE A 1 string\nATTRIBUTE A 2 string", 2, "redefined"),
        ("$INCLUDE missing.file", 0, "missing.file"),
    ];
    for (text, line, needle) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), "dictionary", text);
        let err = Dictionary::from_file(&path).expect_err(text).to_string();
        assert!(err.contains(needle), "{text:?}: {err}");
        if line > 0 {
            assert!(
                err.contains(&format!("dictionary:{line}:")),
                "{text:?}: {err}"
            );
        }
    }
}

#[test]
fn include_loop_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "dictionary", "$INCLUDE dictionary\n");
    let err = Dictionary::from_file(&path).expect_err("loop").to_string();
    assert!(err.contains("too deep"), "{err}");
}

#[test]
fn ships_our_dictionaries() {
    let d = Dictionary::shipped();
    for (name, vendor, number) in [
        ("User-Name", 0, 1),
        ("EAP-Message", 0, 79),
        ("Message-Authenticator", 0, 80),
        ("Tunnel-Private-Group-Id", 0, 81),
        ("Error-Cause", 0, 101),
        ("MS-MPPE-Recv-Key", 311, 17),
        ("Cisco-AVPair", 9, 1),
        ("Aruba-User-Role", 14823, 1),
        ("Juniper-Local-User-Name", 2636, 1),
        ("Fortinet-Group-Name", 12356, 1),
        ("PaloAlto-User-Group", 25461, 5),
        ("Framed-IPv6-Prefix", 0, 97),
    ] {
        let a = d
            .attribute(name)
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!((a.vendor, a.number()), (vendor, number), "{name}");
    }
    assert!(d.attribute("Tunnel-Type").is_some_and(|a| a.flags.has_tag));
    assert_eq!(d.value("Tunnel-Type", "VLAN"), Some(13));
    assert_eq!(d.value("Tunnel-Medium-Type", "IEEE-802"), Some(6));
    assert_eq!(d.value("Acct-Status-Type", "Interim-Update"), Some(3));
}

/// Debian's FreeRADIUS dictionaries (package freeradius-common) must load;
/// CI installs them. Skipped with a message where they are absent.
#[test]
fn reads_freeradius_dictionaries() {
    let path = Path::new("/usr/share/freeradius/dictionary");
    if !path.exists() {
        eprintln!(
            "skipped: {} not installed (apt-get install freeradius-common)",
            path.display()
        );
        return;
    }
    let d = Dictionary::from_file(path).expect("FreeRADIUS dictionaries load");
    assert!(
        d.attribute_count() > 5000,
        "{} attributes",
        d.attribute_count()
    );
    assert!(d.vendor_count() > 100);
    assert_eq!(
        d.attribute("Cisco-AVPair").map(|a| (a.vendor, a.number())),
        Some((9, 1))
    );
}
