//! A real OpenLDAP server for one test: Debian's `slapd` on a free port of 127.0.0.1, with its
//! own `slapd.conf`, an mdb database in a temporary folder loaded with `slapadd`, and a bind
//! account that (unlike the root DN) is subject to the server's limits. Stopped on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SUFFIX: &str = "dc=test,dc=edu";
pub const BIND_DN: &str = "cn=sync,ou=svc,dc=test,dc=edu";
pub const PASSWORD: &str = "ldap-s3cret-Pa55";
const ROOT_DN: &str = "cn=admin,dc=test,dc=edu";
const ROOT_PW: &str = "root-secret";

/// Where Debian installs the server.
pub const SLAPD: &str = "/usr/sbin/slapd";

pub fn available() -> bool {
    Path::new(SLAPD).exists()
        && Path::new("/usr/sbin/slapadd").exists()
        && Path::new("/usr/bin/ldapmodify").exists()
}

pub struct Slapd {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// A person: `uid`, and `mail` unless `None`.
pub fn person(uid: &str, mail: Option<&str>, department: &str) -> String {
    let mut s = format!(
        "dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\ndepartmentNumber: {department}\n"
    );
    if let Some(m) = mail {
        s.push_str(&format!("mail: {m}\n"));
    }
    s + "\n"
}

/// A `groupOfNames` with member DNs (`uid=...` people, or `cn=...` groups).
pub fn group(cn: &str, members: &[String]) -> String {
    let mut s = format!("dn: cn={cn},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {cn}\n");
    for m in members {
        s.push_str(&format!("member: {m}\n"));
    }
    s + "\n"
}

pub fn uid_dn(uid: &str) -> String {
    format!("uid={uid},ou=people,{SUFFIX}")
}

pub fn group_dn(cn: &str) -> String {
    format!("cn={cn},ou=groups,{SUFFIX}")
}

impl Slapd {
    /// Starts a server holding `entries` (LDIF), with `sizelimit` for every account but root.
    pub fn start(entries: &str, sizelimit: Option<usize>) -> Slapd {
        Slapd::start_with(entries, sizelimit, None)
    }

    /// As [`start`](Self::start), offering StartTLS with this certificate chain and key (PEM).
    pub fn start_tls(entries: &str, cert_pem: &str, key_pem: &str) -> Slapd {
        Slapd::start_with(entries, None, Some((cert_pem, key_pem)))
    }

    fn start_with(entries: &str, sizelimit: Option<usize>, tls: Option<(&str, &str)>) -> Slapd {
        let dir = tempfile::tempdir().expect("temp dir");
        let tls_lines = match tls {
            Some((cert, key)) => {
                let (c, k) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
                std::fs::write(&c, cert).unwrap();
                std::fs::write(&k, key).unwrap();
                format!(
                    "TLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
                    c.display(),
                    k.display()
                )
            }
            None => String::new(),
        };
        let db = dir.path().join("db");
        std::fs::create_dir(&db).unwrap();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             include /etc/ldap/schema/nis.schema\n\
             pidfile {dir}/slapd.pid\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             sizelimit {limit}\n\
             {tls_lines}\
             database mdb\n\
             maxsize 104857600\n\
             suffix \"{SUFFIX}\"\n\
             rootdn \"{ROOT_DN}\"\n\
             rootpw {ROOT_PW}\n\
             directory {db}\n\
             access to * by * read\n",
            dir = dir.path().display(),
            limit = sizelimit.map_or("unlimited".to_string(), |n| n.to_string()),
            db = db.display(),
        );
        std::fs::write(dir.path().join("slapd.conf"), conf).unwrap();
        let base = format!(
            "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: test\ndc: test\n\n\
             dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
             dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n\
             dn: ou=svc,{SUFFIX}\nobjectClass: organizationalUnit\nou: svc\n\n\
             dn: {BIND_DN}\nobjectClass: person\ncn: sync\nsn: sync\nuserPassword: {PASSWORD}\n\n"
        );
        let ldif = dir.path().join("data.ldif");
        std::fs::write(&ldif, base + entries).unwrap();
        let out = Command::new("/usr/sbin/slapadd")
            .arg("-q")
            .arg("-f")
            .arg(dir.path().join("slapd.conf"))
            .arg("-l")
            .arg(&ldif)
            .output()
            .expect("slapadd runs");
        assert!(
            out.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut s = Slapd {
            child: None,
            port: 0,
            dir,
        };
        s.launch(free_port());
        s
    }

    fn launch(&mut self, port: u16) {
        let child = Command::new(SLAPD)
            .arg("-f")
            .arg(self.dir.path().join("slapd.conf"))
            .arg("-h")
            .arg(format!("ldap://127.0.0.1:{port}/"))
            .arg("-d")
            .arg("0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("slapd starts");
        self.child = Some(child);
        self.port = port;
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "slapd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// Applies an LDIF change (`changetype: ...`) as the root DN.
    pub fn modify(&self, ldif: &str) {
        let path: PathBuf = self.dir.path().join("change.ldif");
        std::fs::write(&path, ldif).unwrap();
        let out = Command::new("/usr/bin/ldapmodify")
            .args(["-x", "-H", &self.url(), "-D", ROOT_DN, "-w", ROOT_PW, "-f"])
            .arg(&path)
            .output()
            .expect("ldapmodify runs");
        assert!(
            out.status.success(),
            "ldapmodify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
