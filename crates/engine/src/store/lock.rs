//! The single-instance lock: one writer per history database, whatever its path is called.
//!
//! Two processes applying changes from one history would race each other in Studio and in the
//! record. A lock named after the path string let a symlink or a hard link to the same file
//! start a second daemon, so the lock is an OS advisory lock (`flock`) on the history file
//! itself: every spelling of the path reaches the same inode, and the kernel drops the lock
//! when the holder dies, even by `kill -9`. (`flock` and SQLite's own `fcntl` locks do not
//! interact on a local file system.) The holder writes its pid into `<real path>.lock` beside
//! the file with symlinks resolved, for the message the next one prints.
//!
//! The locked descriptor is also how a running daemon notices that its history was deleted or
//! replaced under it ([`InstanceLock::check_in_place`]): the path must still lead to the inode
//! it holds.
//!
//! Closing any descriptor of a file drops *every* POSIX lock this process holds on it,
//! SQLite's included. So the lock is taken before SQLite opens the file and kept until after
//! it closes, and the [`holder`](InstanceLock::holder) probe keeps its descriptor open.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Held for as long as the process works on the history; released on drop or death.
#[derive(Debug)]
pub struct InstanceLock {
    /// The history file itself, locked.
    file: File,
    history: PathBuf,
    /// Where the pid is written.
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another studio-role-sync{} is already using the history database {}; \
         only one daemon or apply may run per history, whatever path names it \
         (pid file {})",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        history.display(),
        lock.display()
    )]
    Held {
        pid: Option<u32>,
        history: PathBuf,
        lock: PathBuf,
    },
    #[error("cannot lock the history database {}: {source}", history.display())]
    Io {
        history: PathBuf,
        source: std::io::Error,
    },
}

/// Why the history file is no longer the one the daemon holds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Displaced {
    #[error("the history database {} was deleted under the running daemon", .0.display())]
    Deleted(PathBuf),
    #[error(
        "the history database {} was replaced under the running daemon (another file now has its path)",
        .0.display()
    )]
    Replaced(PathBuf),
    #[error(
        "the history database {} was given another name under the running daemon: it has {} \
         hard links (find / -samefile {})",
        .0.display(),
        .1,
        .0.display()
    )]
    HardLinked(PathBuf, u64),
}

impl Displaced {
    /// The `reason` that `/readyz` gives for it.
    pub fn reason(&self) -> &'static str {
        match self {
            Displaced::Deleted(_) | Displaced::Replaced(_) => "history_missing",
            Displaced::HardLinked(..) => "history_hard_linked",
        }
    }

    /// What it is and why no run happens until it is fixed.
    pub fn detail(&self) -> String {
        let why = match self {
            Displaced::Deleted(_) | Displaced::Replaced(_) => {
                "no run until it is back in place or the daemon restarts \
                 (runs recorded into it now would be lost)"
            }
            Displaced::HardLinked(..) => {
                "no run until the extra name is removed (SQLite keeps a journal per name, so \
                 runs recorded through one name would be lost through the other)"
            }
        };
        format!("{self}; {why}")
    }

    /// What an admin does about it.
    pub fn remedy(&self) -> &'static str {
        match self {
            Displaced::Deleted(_) | Displaced::Replaced(_) => {
                "Put the history file back (or restore it from a backup) and restart the \
                 daemon; no run happens meanwhile."
            }
            Displaced::HardLinked(..) => {
                "Remove the extra hard link (find / -samefile HISTORY); runs resume by \
                 themselves. Use a symbolic link for a second name."
            }
        }
    }
}

impl InstanceLock {
    /// Takes the lock on `history` (creating the file, private, if missing), or says who
    /// holds it.
    pub fn acquire(history: &Path) -> Result<InstanceLock, LockError> {
        let io = |source| LockError::Io {
            history: history.to_path_buf(),
            source,
        };
        // The history is private (see `state_files`); SQLite reads an empty file as empty.
        if let Some(dir) = history.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::store::state_files::create_private_dir(dir).map_err(io)?;
        }
        crate::store::state_files::create_private_file(history).map_err(io)?;
        let file = OpenOptions::new().read(true).open(history).map_err(io)?;
        let lock = lock_path(history);
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
                // The pid is only for messages: a pid file that cannot be written is no reason
                // to refuse the lock that is held.
                let _ = write_pid(&lock);
                Ok(InstanceLock {
                    file,
                    history: history.to_path_buf(),
                    path: lock,
                })
            }
            Err(TryLockError::WouldBlock) => {
                // Dropping `file` here is safe: SQLite has not opened the history yet.
                Err(LockError::Held {
                    pid: read_pid(&lock),
                    history: history.to_path_buf(),
                    lock,
                })
            }
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }

    /// The pid file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the history's path still leads to the file this lock holds: not deleted, not
    /// replaced by another file (a restore, a `mv` over it), and not given a second name by a
    /// hard link. A daemon writing into a file that no path reaches would lose every run at its
    /// next start; one with two names keeps two journals.
    pub fn check_in_place(&self) -> Result<(), Displaced> {
        let held = self.file.metadata().ok();
        let at_path = std::fs::metadata(&self.history);
        match (held, at_path) {
            (_, Err(_)) => Err(Displaced::Deleted(self.history.clone())),
            (Some(h), Ok(p)) if (h.dev(), h.ino()) != (p.dev(), p.ino()) => {
                Err(Displaced::Replaced(self.history.clone()))
            }
            (Some(h), Ok(_)) if h.nlink() == 0 => Err(Displaced::Deleted(self.history.clone())),
            // A second name made while the daemon runs: refused at open, so refused here too.
            (Some(h), Ok(_)) if h.nlink() > 1 => {
                Err(Displaced::HardLinked(self.history.clone(), h.nlink()))
            }
            _ => Ok(()),
        }
    }

    /// Whether a process holds the lock of `history` (`Some`, with its pid when known),
    /// without taking it: for `trigger` and `approve`, which only write requests to the
    /// history and must work beside the daemon. A shared lock is tried for an instant; nothing
    /// is created.
    pub fn holder(history: &Path) -> Option<Option<u32>> {
        let file = OpenOptions::new().read(true).open(history).ok()?;
        let held = match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                None
            }
            Err(TryLockError::WouldBlock) => Some(read_pid(&lock_path(history))),
            Err(TryLockError::Error(_)) => None,
        };
        // Closing it would drop this process's SQLite locks on the history (see the module
        // doc); a command probes once or twice, so the descriptor is simply kept.
        std::mem::forget(file);
        held
    }
}

fn write_pid(lock: &Path) -> std::io::Result<()> {
    crate::store::state_files::create_private_file(lock)?;
    let mut file = OpenOptions::new().write(true).open(lock)?;
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())
}

/// A pid is a few bytes: whatever else is in the file is not read.
fn read_pid(lock: &Path) -> Option<u32> {
    let file = File::open(lock).ok()?;
    let mut text = String::new();
    let _ = file.take(32).read_to_string(&mut text);
    text.trim().parse().ok()
}

/// The pid file of `history`: beside the file the path leads to, symlinks resolved, so every
/// spelling through a symlink finds the same one.
pub fn lock_path(history: &Path) -> PathBuf {
    let real = std::fs::canonicalize(history).unwrap_or_else(|_| history.to_path_buf());
    let mut name = real
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".lock");
    real.with_file_name(name)
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

    #[test]
    fn every_name_of_the_file_is_the_same_lock() {
        let dir = tempfile::tempdir().unwrap();
        let history = dir.path().join("history.db");
        let _first = InstanceLock::acquire(&history).unwrap();
        let symlink = dir.path().join("via-symlink.db");
        std::os::unix::fs::symlink(&history, &symlink).unwrap();
        let hard = dir.path().join("via-hard-link.db");
        std::fs::hard_link(&history, &hard).unwrap();
        for other in [&symlink, &hard] {
            assert!(matches!(
                InstanceLock::acquire(other),
                Err(LockError::Held { .. })
            ));
            assert!(InstanceLock::holder(other).is_some());
        }
    }

    #[test]
    fn a_deleted_or_replaced_history_is_noticed_and_a_returned_one_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let history = dir.path().join("history.db");
        let lock = InstanceLock::acquire(&history).unwrap();
        assert_eq!(lock.check_in_place(), Ok(()));
        let aside = dir.path().join("aside.db");
        std::fs::rename(&history, &aside).unwrap();
        assert_eq!(
            lock.check_in_place(),
            Err(Displaced::Deleted(history.clone()))
        );
        std::fs::write(&history, b"").unwrap();
        assert_eq!(
            lock.check_in_place(),
            Err(Displaced::Replaced(history.clone()))
        );
        std::fs::rename(&aside, &history).unwrap();
        assert_eq!(lock.check_in_place(), Ok(()));
        let other = dir.path().join("other.db");
        std::fs::hard_link(&history, &other).unwrap();
        assert_eq!(
            lock.check_in_place(),
            Err(Displaced::HardLinked(history.clone(), 2))
        );
        std::fs::remove_file(&other).unwrap();
        assert_eq!(lock.check_in_place(), Ok(()));
    }
}
