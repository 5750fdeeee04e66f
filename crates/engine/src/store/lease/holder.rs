//! Who contends for a lease ([`Holder`]) and who holds it ([`LeaderInfo`]), as messages name
//! them: "the daemon on HOST (pid N) leads since T".

use super::Epoch;
use crate::input::email_address::escaped;

/// One process contending for the lease. `id` is unique per process start (host, pid and a
/// random part), so a restarted daemon with a reused pid is still a new holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub(crate) id: String,
    pub(crate) host: String,
    pub(crate) pid: i64,
}

/// Host names longer than this are cut: the row is read back into messages.
const HOST_MAX: usize = 255;

impl Holder {
    /// This process: its host name, its pid, and 64 random bits.
    pub fn this_process() -> Holder {
        let host: String = hostname().chars().take(HOST_MAX).collect();
        let pid = i64::from(std::process::id());
        let id = format!("{host}/{pid}/{:016x}", rand::random::<u64>());
        Holder { id, host, pid }
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The holder of the live lease, read from the row (so written by another process: shown
/// escaped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderInfo {
    pub holder: String,
    pub host: String,
    pub pid: i64,
    pub epoch: Epoch,
    /// When its term began (the database's clock).
    pub since: chrono::DateTime<chrono::Utc>,
}

impl std::fmt::Display for LeaderInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the daemon on {} (pid {}) leads since {}",
            escaped(&self.host),
            self.pid,
            self.since.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// The host name (`gethostname`), or `unknown-host` when it cannot be read.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match String::from_utf8_lossy(&buf[..end]).trim() {
        "" => "unknown-host".into(),
        h => h.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_process_start_is_a_new_holder() {
        let (a, b) = (Holder::this_process(), Holder::this_process());
        assert_ne!(a.id, b.id);
        assert_eq!((a.host.as_str(), a.pid), (b.host.as_str(), b.pid));
        assert!(
            a.id.starts_with(&format!("{}/{}/", a.host, a.pid)),
            "{}",
            a.id
        );
    }

    #[test]
    fn the_leader_is_named_escaped() {
        let info = LeaderInfo {
            holder: "x".into(),
            host: "evil\u{1b}[8mhost".into(),
            pid: 42,
            epoch: Epoch(3),
            since: chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        };
        assert_eq!(
            info.to_string(),
            "the daemon on evil\\u{1b}[8mhost (pid 42) leads since 2027-01-15 08:00:00 UTC"
        );
    }
}
