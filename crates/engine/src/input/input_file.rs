//! Reading an input file without trusting it: every file the tool reads (the config, the
//! roles file, `token_file`, `client_secret_file`, `refresh_token_file`, `url_file`, a CA
//! file) goes through [`read_text`].
//!
//! Why it is shaped this way:
//! - Symlinks are followed (Kubernetes mounts a ConfigMap as links into `..data`), and only a
//!   regular file is read: a FIFO would block the reader forever and `/dev/zero` never ends.
//!   The type is checked with `stat` before opening (which cannot block), and again with
//!   `fstat` on the opened file, which is opened non-blocking so that a FIFO swapped in
//!   between the two cannot hang it either.
//! - The size limit is enforced on the bytes actually read (`take(limit + 1)`), never on the
//!   metadata alone: a file can grow while it is read, and `/proc`-like files claim size 0.
//! - Errors say what is wrong without the path: the caller knows which key or file it was,
//!   and for secret files the path itself must not be echoed (an admin may have pasted the
//!   secret there).

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The config file: a few kilobytes in practice.
pub(crate) const CONFIG_MAX_BYTES: u64 = 1 << 20;
/// A token, client secret, refresh token or database URL held in a file.
pub(crate) const SECRET_MAX_BYTES: u64 = 64 << 10;
/// The roles file, unless `source.max_bytes` says otherwise: a million grants written one
/// line per user take ~24 MB.
pub(crate) const ROLES_FILE_DEFAULT_MAX_BYTES: u64 = 64 << 20;
/// The highest `source.max_bytes` accepted: parsing takes roughly ten times the file's size
/// in memory, so a larger limit would be no limit.
pub(crate) const ROLES_FILE_MAX_MAX_BYTES: u64 = 1 << 30;

/// Why a file could not be read as text.
#[derive(Debug)]
pub(crate) enum InputFileError {
    /// Missing, unreadable, a broken link...
    Io(std::io::Error),
    /// A FIFO, a device, a socket or a folder: what it is, e.g. "a FIFO (named pipe)".
    NotRegular(&'static str),
    /// Over the limit; `size` when the metadata already said so.
    TooLarge { limit: u64, size: Option<u64> },
    /// The bytes are not UTF-8; `offset` of the first bad byte.
    NotUtf8 { offset: usize },
}

impl fmt::Display for InputFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputFileError::Io(e) => write!(f, "cannot be read: {e}"),
            InputFileError::NotRegular(kind) => {
                write!(f, "is {kind}, not a regular file; it is not read")
            }
            InputFileError::TooLarge {
                limit,
                size: Some(size),
            } => write!(
                f,
                "is {}, over the limit of {}; it is not read",
                human_bytes(*size),
                human_bytes(*limit)
            ),
            InputFileError::TooLarge { limit, size: None } => write!(
                f,
                "is larger than the limit of {}; it is not read",
                human_bytes(*limit)
            ),
            InputFileError::NotUtf8 { offset } => {
                write!(f, "is not UTF-8 text (bad byte at offset {offset})")
            }
        }
    }
}

impl std::error::Error for InputFileError {}

impl InputFileError {
    pub(crate) fn is_too_large(&self) -> bool {
        matches!(self, InputFileError::TooLarge { .. })
    }

    /// True when the file does not exist (or a link points nowhere).
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, InputFileError::Io(e) if e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// The text of the regular file at `path` (links followed), at most `limit` bytes long.
pub(crate) fn read_text(path: &Path, limit: u64) -> Result<String, InputFileError> {
    let bytes = read_bytes(path, limit)?;
    String::from_utf8(bytes).map_err(|e| InputFileError::NotUtf8 {
        offset: e.utf8_error().valid_up_to(),
    })
}

/// The bytes of the regular file at `path` (links followed), at most `limit` bytes long.
pub(crate) fn read_bytes(path: &Path, limit: u64) -> Result<Vec<u8>, InputFileError> {
    // stat follows links and never blocks: a FIFO is refused before anything opens it.
    let before = std::fs::metadata(path).map_err(InputFileError::Io)?;
    check_regular(&before)?;
    if before.len() > limit {
        return Err(InputFileError::TooLarge {
            limit,
            size: Some(before.len()),
        });
    }
    // Non-blocking: if the file was replaced by a FIFO since, opening it still returns.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(InputFileError::Io)?;
    check_regular(&file.metadata().map_err(InputFileError::Io)?)?;
    read_capped(file, limit)
}

fn check_regular(meta: &Metadata) -> Result<(), InputFileError> {
    let t = meta.file_type();
    let kind = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(InputFileError::NotRegular(kind))
}

/// Reads at most `limit` bytes; one byte more means the file is too large.
fn read_capped(file: File, limit: u64) -> Result<Vec<u8>, InputFileError> {
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(InputFileError::Io)?;
    if bytes.len() as u64 > limit {
        return Err(InputFileError::TooLarge { limit, size: None });
    }
    Ok(bytes)
}

/// `64 MiB`, `1.5 KiB`, `200 bytes`: sizes as people read them.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Reads a size written in a config file: a number of bytes, or a number with a unit
/// (`64 MiB`, `500KB`, `2 GiB`; KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024).
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = (t[..split].trim(), t[split..].trim());
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" | "k" => 1 << 10,
        "mib" | "m" => 1 << 20,
        "gib" | "g" => 1 << 30,
        _ => return None,
    };
    let value: f64 = number.parse().ok().filter(|v: &f64| v.is_finite())?;
    let bytes = value * factor as f64;
    (bytes >= 0.0 && bytes <= u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn reads_regular_files_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, "users:\n").unwrap();
        let link = dir.path().join("link.yaml");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(read_text(&link, 100).unwrap(), "users:\n");
        assert_eq!(read_text(&file, 7).unwrap(), "users:\n");
        let e = read_text(&file, 6).unwrap_err();
        assert!(e.is_too_large(), "{e}");
        assert_eq!(
            e.to_string(),
            "is 7 bytes, over the limit of 6 bytes; it is not read"
        );
    }

    #[test]
    fn refuses_what_is_not_a_regular_file_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let started = Instant::now();
        let e = read_text(&fifo, 100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "is a FIFO (named pipe), not a regular file; it is not read"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(matches!(
            read_text(&zero, 100),
            Err(InputFileError::NotRegular("a character device"))
        ));
        assert!(matches!(
            read_text(dir.path(), 100),
            Err(InputFileError::NotRegular("a folder"))
        ));
        assert!(read_text(&dir.path().join("missing"), 100)
            .unwrap_err()
            .is_not_found());
    }

    #[test]
    fn the_cap_holds_when_the_metadata_lies() {
        // /proc files report size 0: only the bytes read count.
        let e = read_text(Path::new("/proc/self/maps"), 16).unwrap_err();
        assert!(
            matches!(e, InputFileError::TooLarge { size: None, .. }),
            "{e}"
        );
    }

    #[test]
    fn not_utf8_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bin");
        std::fs::write(&file, b"ab\xffcd").unwrap();
        assert_eq!(
            read_text(&file, 100).unwrap_err().to_string(),
            "is not UTF-8 text (bad byte at offset 2)"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(human_bytes(64 << 20), "64 MiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(parse_size("64 MiB"), Some(64 << 20));
        assert_eq!(parse_size("500KB"), Some(500_000));
        assert_eq!(parse_size("1.5 gib"), Some(3 << 29));
        assert_eq!(parse_size("1000"), Some(1000));
        for bad in ["", "MiB", "-1 MiB", "1 furlong", "1e999", "1.2.3"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }
}
