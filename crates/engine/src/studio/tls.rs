//! Whom the client trusts, and the HTTP client built with that trust.
//!
//! Universities often run a private CA or a TLS-inspecting proxy, so the bundled web PKI roots
//! are not enough. The client trusts, together: the bundled Mozilla roots (`webpki-roots`,
//! so a minimal container works), the operating system's store (`rustls-native-certs`:
//! `/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`), and `studio.ca_file` when set. One
//! client carries this trust to every request, token requests included.

use super::{ClientSettings, StudioError};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Largest CA file read: a bundle of a few hundred certificates fits easily.
pub const MAX_CA_FILE: u64 = 1024 * 1024;

/// Certificates from `studio.ca_file`, trusted on top of the OS store and the bundled roots.
#[derive(Clone, Default)]
pub struct ExtraRoots {
    pub file: Option<PathBuf>,
    certificates: Vec<reqwest::Certificate>,
}

impl std::fmt::Debug for ExtraRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtraRoots")
            .field("file", &self.file)
            .field("certificates", &self.certificates.len())
            .finish()
    }
}

impl ExtraRoots {
    /// How many certificates the file held.
    pub fn len(&self) -> usize {
        self.certificates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }
}

/// Reads a PEM file of one or more CA certificates, bounded, and checks that each one can be
/// trusted. The error says what is wrong (the caller adds the config key and line).
pub fn read_ca_file(path: &Path) -> Result<ExtraRoots, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    if meta.len() > MAX_CA_FILE {
        return Err(format!(
            "{shown} is {} bytes; a CA file is at most {MAX_CA_FILE} bytes",
            meta.len()
        ));
    }
    let mut pem = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CA_FILE + 1).read_to_end(&mut pem))
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if pem.len() as u64 > MAX_CA_FILE {
        return Err(format!("{shown} is larger than {MAX_CA_FILE} bytes"));
    }
    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
        return Err(format!(
            "{shown} holds no PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)"
        ));
    }
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{shown} is not a valid PEM certificate bundle: {e}"))?;
    if certificates.is_empty() {
        return Err(format!("{shown} holds no readable certificate"));
    }
    // Building a client with only these roots checks every certificate as rustls will use it.
    let mut check = reqwest::Client::builder().tls_built_in_root_certs(false);
    for c in &certificates {
        check = check.add_root_certificate(c.clone());
    }
    check.build().map_err(|e| {
        format!(
            "{shown}: a certificate cannot be used as a trust root: {}",
            chain(&e)
        )
    })?;
    Ok(ExtraRoots {
        file: Some(path.to_path_buf()),
        certificates,
    })
}

/// The HTTP client for Studio (API and token endpoint) with the trust described above.
pub fn http_client(settings: &ClientSettings) -> Result<reqwest::Client, StudioError> {
    let mut builder = reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("studio-role-sync/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(settings.concurrency.max(1))
        .tls_built_in_webpki_certs(true)
        .tls_built_in_native_certs(true);
    for c in &settings.extra_roots.certificates {
        builder = builder.add_root_certificate(c.clone());
    }
    builder.build().map_err(|e| StudioError::Unreachable {
        endpoint: "client",
        attempts: 0,
        message: format!("cannot set up the HTTP client: {}", chain(&e)),
    })
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// A connection that failed because the server's certificate is not trusted (or not valid):
/// trying again cannot help.
pub fn is_certificate_error(e: &reqwest::Error) -> bool {
    let text = chain(e).to_ascii_lowercase();
    text.contains("invalid peer certificate") || text.contains("certificate verify")
}

/// Adds what to do to a connection error that is a certificate problem.
pub fn explain(message: String) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        format!(
            "{message} (TLS: Studio's certificate is not trusted; if your network uses a private CA or a \
             TLS-inspecting proxy, add its CA certificate with studio.ca_file or to the system's trust store)"
        )
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_ca_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read_ca_file(&dir.path().join("nope.pem")).unwrap_err();
        assert!(missing.contains("cannot read"), "{missing}");
        assert!(read_ca_file(dir.path())
            .unwrap_err()
            .contains("not a regular file"));
        let text = dir.path().join("text.pem");
        std::fs::write(&text, "hello").unwrap();
        assert!(read_ca_file(&text)
            .unwrap_err()
            .contains("no PEM certificate"));
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = read_ca_file(&broken).unwrap_err();
        assert!(e.contains("broken.pem"), "{e}");
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'a'; MAX_CA_FILE as usize + 1]).unwrap();
        assert!(read_ca_file(&big).unwrap_err().contains("at most"));
    }
}
