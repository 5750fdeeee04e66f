//! The state folder and the files in it are private to the service's user, whatever the umask.
//!
//! The history database holds OAuth tokens and every user's email, so it, its SQLite
//! `-wal`/`-shm` companions and the lock file are `0600`, and a state folder this tool creates
//! is `0700`. Modes passed to `open`/`mkdir` are filtered by the umask (`umask 000` gave a
//! `0777` folder; `umask 0277` would give a file the owner cannot write), so every mode is also
//! set explicitly afterwards. An existing file that is too open is tightened, with a warning;
//! an existing folder is left as it is (a systemd `StateDirectory` or a Kubernetes volume has
//! its own owner and mode, which the files inside do not depend on).

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub(crate) const DIR_MODE: u32 = 0o700;
pub(crate) const FILE_MODE: u32 = 0o600;

/// Creates `dir` and any missing parents `0700`; folders that exist are not changed.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut missing: Vec<PathBuf> = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at.filter(|d| !d.as_os_str().is_empty()) {
        match std::fs::metadata(d) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a folder", d.display()),
                ))
            }
            Err(_) => missing.push(d.to_path_buf()),
        }
        at = d.parent();
    }
    for d in missing.iter().rev() {
        match DirBuilder::new().mode(DIR_MODE).create(d) {
            Ok(()) => std::fs::set_permissions(d, Permissions::from_mode(DIR_MODE))?,
            // Created meanwhile by another process: theirs, and as private as ours.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Creates `path` `0600` if it does not exist; an existing file is only tightened (see
/// [`tighten`]).
pub(crate) fn create_private_file(path: &Path) -> io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => std::fs::set_permissions(path, Permissions::from_mode(FILE_MODE)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            tighten(path);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Makes an existing file that others may read or write `0600`, with a warning naming it and
/// its old mode. A missing file is fine; a file that cannot be changed (another owner) is
/// warned about and left. Returns the old mode when the file was tightened.
pub(crate) fn tighten(path: &Path) -> Option<u32> {
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return None;
    }
    match std::fs::set_permissions(path, Permissions::from_mode(FILE_MODE)) {
        Ok(()) => {
            tracing::warn!(
                file = %path.display(),
                "{} was readable or writable by others (mode {mode:04o}); tightened to 0600: \
                 it holds OAuth tokens and the users' emails",
                path.display()
            );
            Some(mode)
        }
        Err(e) => {
            tracing::warn!(
                file = %path.display(),
                error = %e,
                "{} is readable or writable by others (mode {mode:04o}) and cannot be tightened \
                 to 0600: {e}",
                path.display()
            );
            None
        }
    }
}

/// The files SQLite keeps beside a WAL-mode database.
pub(crate) fn sqlite_companions(db: &Path) -> [PathBuf; 2] {
    ["-wal", "-shm"].map(|suffix| {
        let mut name = db.as_os_str().to_os_string();
        name.push(suffix);
        PathBuf::from(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn creates_private_folders_and_files_and_tightens_open_ones() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!((mode(&root.path().join("a")), mode(&dir)), (0o700, 0o700));
        let file = dir.join("history.db");
        create_private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        std::fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap();
        assert_eq!(tighten(&file), Some(0o644));
        assert_eq!(mode(&file), 0o600);
        assert_eq!(tighten(&file), None);
        assert_eq!(tighten(&dir.join("missing")), None);
        std::fs::set_permissions(&file, Permissions::from_mode(0o666)).unwrap();
        create_private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        // An existing folder is not changed.
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o755);
        assert_eq!(
            sqlite_companions(&file)[0],
            dir.join("history.db-wal"),
            "companions"
        );
    }
}
