//! A real OpenLDAP server for the tests: Debian's `slapd` (package slapd,
//! with ldap-utils for ldapadd) started on an ephemeral loopback port with a
//! generated slapd.conf (mdb, memberof overlay, an ACL that makes the
//! service account bind) and the LDIF below. Stopped when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const SUFFIX: &str = "dc=example,dc=org";
pub const BIND_DN: &str = "cn=certgate,ou=services,dc=example,dc=org";
pub const BIND_PASSWORD: &str = "ldap-secret";
const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
const ROOT_PASSWORD: &str = "root-secret";

/// People, groups (staff nested in employees), a disabled user, and the
/// service account. carol is a contractor: no rule gives her access; two
/// entries share twin@example.org. dave is only in a group named
/// `employees` that the sales OU's delegated admin made outside
/// ou=groups: a rule on the name alone lets him in.
pub const LDIF: &str = "\
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: ou=services,dc=example,dc=org
objectClass: organizationalUnit
ou: services

dn: cn=certgate,ou=services,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: certgate
userPassword: ldap-secret

dn: uid=alice,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: A
mail: alice@example.org
departmentNumber: 42

dn: uid=carol,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: carol
cn: Carol
sn: C
mail: carol@example.org

dn: uid=mallory,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: mallory
cn: Mallory
sn: M
mail: mallory@example.org
employeeType: disabled

dn: uid=twin1,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: twin1
cn: Twin One
sn: T
mail: twin@example.org

dn: uid=twin2,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: twin2
cn: Twin Two
sn: T
mail: twin@example.org

dn: cn=staff,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: staff
member: uid=alice,ou=people,dc=example,dc=org
member: uid=mallory,ou=people,dc=example,dc=org

dn: cn=employees,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: employees
member: cn=staff,ou=groups,dc=example,dc=org

dn: cn=contractors,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: contractors
member: uid=carol,ou=people,dc=example,dc=org

dn: uid=dave,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: dave
cn: Dave
sn: D
mail: dave@example.org

dn: ou=sales,dc=example,dc=org
objectClass: organizationalUnit
ou: sales

dn: cn=employees,ou=sales,dc=example,dc=org
objectClass: groupOfNames
cn: employees
member: uid=dave,ou=people,dc=example,dc=org
";

pub struct Slapd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    pub port: u16,
    /// The ldaps:// port, when started with a certificate.
    pub tls_port: Option<u16>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("ephemeral port")
        .port()
}

impl Slapd {
    /// Starts slapd and loads the LDIF through it (so the memberof
    /// overlay maintains memberOf).
    pub fn start() -> Slapd {
        Self::start_with_tls(None)
    }

    /// `start`, also serving StartTLS on the ldap:// port and ldaps:// on
    /// `tls_port`, with this (certificate, key) pair.
    pub fn start_with_tls(tls: Option<(PathBuf, PathBuf)>) -> Slapd {
        Self::start_with(tls, "", "")
    }

    /// `start_with_tls`, with `schema` lines after the standard schemas and
    /// `ldif` records (adds or `changetype: modify`) after the LDIF.
    pub fn start_with(tls: Option<(PathBuf, PathBuf)>, schema: &str, ldif: &str) -> Slapd {
        let dir = tempfile::tempdir().expect("tempdir");
        let tls_lines = match &tls {
            Some((cert, key)) => format!(
                "TLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
                cert.display(),
                key.display()
            ),
            None => String::new(),
        };
        std::fs::create_dir(dir.path().join("db")).expect("db dir");
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             {schema}\n\
             {tls_lines}\
             pidfile {dir}/slapd.pid\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             moduleload memberof\n\
             database mdb\n\
             maxsize 10485760\n\
             suffix \"{SUFFIX}\"\n\
             rootdn \"{ROOT_DN}\"\n\
             rootpw {ROOT_PASSWORD}\n\
             directory {dir}/db\n\
             overlay memberof\n\
             access to attrs=userPassword by anonymous auth by * none\n\
             access to * by dn.exact=\"{BIND_DN}\" read by anonymous auth by * none\n",
            dir = dir.path().display()
        );
        std::fs::write(dir.path().join("slapd.conf"), conf).expect("slapd.conf");
        std::fs::write(dir.path().join("data.ldif"), format!("{LDIF}\n{ldif}")).expect("ldif");
        let mut s = Slapd {
            child: None,
            dir,
            port: 0,
            tls_port: None,
        };
        // The port is chosen free and then handed to slapd: another process
        // could take it in between, so a failed start tries a new port.
        for _ in 0..5 {
            s.port = free_port();
            s.tls_port = tls.as_ref().map(|_| free_port());
            if s.spawn() {
                break;
            }
        }
        assert!(s.child.is_some(), "slapd did not start: {}", s.log());
        let out = Command::new("ldapadd")
            .args([
                "-x",
                "-H",
                &s.url(),
                "-D",
                ROOT_DN,
                "-w",
                ROOT_PASSWORD,
                "-f",
            ])
            .arg(s.dir.path().join("data.ldif"))
            .output()
            .expect("ldapadd (apt-get install ldap-utils)");
        assert!(
            out.status.success(),
            "ldapadd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        s
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    fn listen_urls(&self) -> String {
        match self.tls_port {
            Some(p) => format!("{}/ ldaps://127.0.0.1:{p}/", self.url()),
            None => format!("{}/", self.url()),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// Starts slapd on `self.port` and waits until it answers a root DSE
    /// search; false when it exited instead.
    fn spawn(&mut self) -> bool {
        let log = std::fs::File::create(self.dir.path().join("slapd.log")).expect("log");
        // /usr/sbin is not on every user's PATH.
        let slapd = ["/usr/sbin/slapd", "slapd"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("slapd");
        let mut child = Command::new(slapd)
            .args(["-d", "0", "-f"])
            .arg(self.dir.path().join("slapd.conf"))
            .args(["-h", &self.listen_urls()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("slapd (apt-get install slapd)");
        let url = self.url();
        // Ready when it answers a root DSE search; dead if it exited.
        let ready = super::poll::until(Duration::from_secs(20), || {
            if let Ok(Some(_)) = child.try_wait() {
                return Some(false);
            }
            let ok = Command::new("ldapsearch")
                .args([
                    "-x",
                    "-H",
                    &url,
                    "-b",
                    "",
                    "-s",
                    "base",
                    "-o",
                    "nettimeout=1",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            ok.then_some(true)
        });
        if ready == Some(true) {
            self.child = Some(child);
            return true;
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Kills slapd (the database stays for `restart`).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts slapd again on the same port with the same data.
    pub fn restart(&mut self) {
        self.stop();
        assert!(self.spawn(), "slapd did not restart: {}", self.log());
    }

    /// SIGSTOP / SIGCONT: a server that accepts TCP but never answers.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().expect("running").id();
        let sig = if frozen { "-STOP" } else { "-CONT" };
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig}");
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Some(c) = &self.child {
            // A frozen slapd would ignore nothing, but make sure it can die.
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
        }
        self.stop();
    }
}
