//! `studio.ca_file`: the CA certificates (PEM) of a private CA or a TLS-inspecting proxy,
//! trusted on top of the OS store and the bundled roots. Read when the config loads, bounded,
//! and checked certificate by certificate, so a bad file is a config error with its key and
//! line, not a TLS failure at the first request.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest CA file read: a bundle of a few hundred certificates fits easily.
pub(crate) const MAX_CA_FILE: u64 = 1024 * 1024;

/// Certificates from `studio.ca_file`, trusted on top of the OS store and the bundled roots.
#[derive(Clone, Default)]
pub struct ExtraRoots {
    pub file: Option<PathBuf>,
    certificates: Vec<reqwest::Certificate>,
    /// The same certificates as DER, for a rustls client of our own (the LDAP source).
    der: Vec<Vec<u8>>,
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
    /// The certificates, for the HTTP client's trust store.
    pub fn certificates(&self) -> &[reqwest::Certificate] {
        &self.certificates
    }

    /// The certificates as DER, in the file's order.
    pub fn der(&self) -> &[Vec<u8>] {
        &self.der
    }

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
pub(crate) fn read_ca_file(path: &Path) -> Result<ExtraRoots, String> {
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
        let causes = std::iter::successors(std::error::Error::source(&e), |s| s.source());
        let why: Vec<String> = std::iter::once(e.to_string())
            .chain(causes.map(ToString::to_string))
            .collect();
        format!(
            "{shown}: a certificate cannot be used as a trust root: {}",
            why.join(": ")
        )
    })?;
    let der = pem_der(&pem);
    if der.len() != certificates.len() {
        return Err(format!("{shown} is not a valid PEM certificate bundle"));
    }
    Ok(ExtraRoots {
        file: Some(path.to_path_buf()),
        certificates,
        der,
    })
}

/// The DER bytes of each `CERTIFICATE` block of a PEM text.
fn pem_der(pem: &[u8]) -> Vec<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .map(|c| c.as_ref().to_vec())
        .collect()
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
