//! The single-instance lock: one writer per history database.
//!
//! Two processes applying changes from one history would race each other in Studio and in the
//! record. The lock is an OS advisory lock (`flock`) on `<history>.lock`: the kernel drops it
//! when the holder dies, even by `kill -9`, so a stale lock file is never a lock and needs no
//! clean-up. The holder writes its pid into the file, for the message the next one prints.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Held for as long as the process works on the history; released on drop or death.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another studio-role-sync{} is already using the history database {}; \
         only one daemon or apply may run per history (lock file {})",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        history.display(),
        lock.display()
    )]
    Held {
        pid: Option<u32>,
        history: PathBuf,
        lock: PathBuf,
    },
    #[error("cannot create the lock file {}: {source}", lock.display())]
    Io {
        lock: PathBuf,
        source: std::io::Error,
    },
}

impl InstanceLock {
    /// Takes the lock beside `history`, or says who holds it.
    pub fn acquire(history: &Path) -> Result<InstanceLock, LockError> {
        let lock = lock_path(history);
        let io = |source| LockError::Io {
            lock: lock.clone(),
            source,
        };
        // The lock file is private like the history beside it (see `state_files`).
        if let Some(dir) = lock.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::store::state_files::create_private_dir(dir).map_err(io)?;
        }
        crate::store::state_files::create_private_file(&lock).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&lock)
            .map_err(io)?;
        // A `holder` probe (trigger, approve) holds a shared lock for an instant: a daemon
        // starting at that moment tries again before it gives up.
        let mut result = file.try_lock();
        for _ in 0..5 {
            if !matches!(result, Err(TryLockError::WouldBlock)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            result = file.try_lock();
        }
        match result {
            Ok(()) => {
                file.set_len(0).map_err(io)?;
                file.rewind().map_err(io)?;
                write!(file, "{}", std::process::id()).map_err(io)?;
                Ok(InstanceLock {
                    _file: file,
                    path: lock,
                })
            }
            Err(TryLockError::WouldBlock) => {
                // A pid is a few bytes: whatever else is in the file is not read.
                let mut text = String::new();
                let _ = (&mut file).take(32).read_to_string(&mut text);
                Err(LockError::Held {
                    pid: text.trim().parse().ok(),
                    history: history.to_path_buf(),
                    lock,
                })
            }
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a process holds the lock of `history` (`Some`, with its pid when it wrote
    /// one), without taking it: for `trigger` and `approve`, which only write requests to the
    /// history and must work beside the daemon. A shared lock is tried for an instant; the
    /// lock file is not created.
    pub fn holder(history: &Path) -> Option<Option<u32>> {
        let mut file = OpenOptions::new()
            .read(true)
            .open(lock_path(history))
            .ok()?;
        match file.try_lock_shared() {
            Ok(()) => None,
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = (&mut file).take(32).read_to_string(&mut text);
                Some(text.trim().parse().ok())
            }
            Err(TryLockError::Error(_)) => None,
        }
    }
}

pub fn lock_path(history: &Path) -> PathBuf {
    let mut name = history
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    history.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let history = dir.path().join("history.db");
        let first = InstanceLock::acquire(&history).unwrap();
        let err = InstanceLock::acquire(&history).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert_eq!(
            InstanceLock::holder(&history),
            Some(Some(std::process::id()))
        );
        drop(first);
        assert_eq!(InstanceLock::holder(&history), None);
        InstanceLock::acquire(&history).unwrap();
    }
}
