//! Saved plans: `plan --out FILE` writes the plan a person reviewed, `apply FILE` sends it
//! only if a fresh plan is the same, like Terraform's saved plans.
//!
//! The file is JSON: the actions, their digest ([`digest::digest`]), where the plan was made
//! (Studio URL, history, the run that made it), fingerprints of the config and of the desired
//! state, and when. Only the digest decides whether the plan may be applied; the fingerprints
//! say *why* a plan changed (the roles file was edited, the config changed) in the refusal.
//! The file is written `0600` (it lists people's emails) and read back the guarded way
//! ([`input_file`](crate::input::input_file)): a regular file, at most [`SAVED_PLAN_MAX_BYTES`].
//! A file whose actions do not hash to its digest was edited and is refused.
//!
//! `--out` names a regular file or nothing yet ([`check_out_path`]): a symlink would send the
//! plan (and its mode) to another file, a FIFO would hang the command, a folder cannot hold it.
//! The plan is written to a temporary file beside it and renamed over it, so a full disk
//! leaves the previous good plan whole.

use crate::input::desired::DesiredState;
use crate::input::roles::ManagedRoles;
use crate::model::digest::{self, PlannedAction};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// A saved plan is read up to this size: about 500,000 actions.
pub(crate) const SAVED_PLAN_MAX_BYTES: u64 = 64 << 20;
/// What `format` says in every saved plan.
pub const FORMAT: &str = "studio-role-sync saved plan";
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SavedPlan {
    pub format: String,
    pub version: u32,
    pub created_at: String,
    /// The `plan` run that made it (in the history it was made with).
    pub run_id: i64,
    /// `studio.base_url`: a plan is for one tenant.
    pub studio: String,
    pub history: String,
    /// SHA-256 of the config file's text.
    pub config_sha256: String,
    /// SHA-256 of the desired state (emails and roles, sorted): the same for a YAML file and
    /// for a SQL query that returned the same grants.
    pub desired_sha256: String,
    /// The guard the plan trips without approval (`runs.guard`), if any.
    pub guard: Option<String>,
    pub digest: String,
    pub actions: Vec<PlannedAction>,
}

/// Why a saved plan cannot be used; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("saved plan {file}: {message}")]
pub struct SavedPlanError {
    pub file: String,
    pub message: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SHA-256 of a config file's text.
pub fn config_fingerprint(text: &str) -> String {
    sha256_hex(text.as_bytes())
}

/// SHA-256 of a desired state: one `email\trole` line per grant, sorted.
pub fn desired_fingerprint(desired: &DesiredState, managed: &ManagedRoles) -> String {
    let mut lines: Vec<String> = desired
        .users
        .iter()
        .flat_map(|(email, roles)| {
            let mut v: Vec<String> = roles
                .iter()
                .map(|r| format!("{email}\t{}\n", managed.name(r)))
                .collect();
            if v.is_empty() {
                v.push(format!("{email}\t\n"));
            }
            v
        })
        .collect();
    lines.sort_unstable();
    sha256_hex(lines.concat().as_bytes())
}

/// Refuses a `--out` path that is neither absent nor a regular file (checked before the run,
/// and again when writing). The path itself is looked at, not what a symlink points to.
pub fn check_out_path(path: &Path) -> Result<(), SavedPlanError> {
    let kind = match std::fs::symlink_metadata(path) {
        Ok(m) => m.file_type(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(SavedPlanError {
                file: path.display().to_string(),
                message: format!("cannot be checked: {e}"),
            })
        }
    };
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a device"
    };
    Err(SavedPlanError {
        file: path.display().to_string(),
        message: format!(
            "is {what}; --out must name a regular file or a file that does not exist yet"
        ),
    })
}

impl SavedPlan {
    /// Writes the plan to `path`, `0600` whatever the umask: to a temporary file in the same
    /// folder, then renamed over `path` (see the module doc).
    pub fn write(&self, path: &Path) -> Result<(), SavedPlanError> {
        let err = |message: String| SavedPlanError {
            file: path.display().to_string(),
            message,
        };
        check_out_path(path)?;
        let json = serde_json::to_vec_pretty(self).map_err(|e| err(e.to_string()))?;
        let name = path
            .file_name()
            .ok_or_else(|| err("is not a file name".into()))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{}.tmp", std::process::id()));
        let temp = path.with_file_name(temp_name);
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)?;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            f.write_all(&json)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&temp, path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(err(format!("cannot be written: {e}")));
        }
        Ok(())
    }

    /// Reads and checks a saved plan: bounded, the right format, actions that hash to its
    /// digest.
    pub fn read(path: &Path) -> Result<SavedPlan, SavedPlanError> {
        let err = |message: String| SavedPlanError {
            file: path.display().to_string(),
            message,
        };
        let text = crate::input::input_file::read_text(path, SAVED_PLAN_MAX_BYTES)
            .map_err(|e| err(e.to_string()))?;
        let plan: SavedPlan = serde_json::from_str(&text).map_err(|e| {
            err(format!(
                "is not a saved plan (line {}, column {}: {e}); write one with `plan --out FILE`",
                e.line(),
                e.column()
            ))
        })?;
        if plan.format != FORMAT || plan.version != VERSION {
            return Err(err(format!(
                "is format {:?} version {}, not {FORMAT:?} version {VERSION}",
                plan.format, plan.version
            )));
        }
        let digest = digest::digest(&plan.actions);
        if digest != plan.digest {
            return Err(err(format!(
                "its actions do not match its digest (the file was edited): it says {}, its \
                 actions hash to {}",
                plan.digest, digest
            )));
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SavedPlan {
        let actions = vec![PlannedAction {
            user_id: 3,
            email: Some("a@x.edu".into()),
            role: "Admin".into(),
            action: crate::model::change::ChangeKind::Remove,
        }];
        SavedPlan {
            format: FORMAT.into(),
            version: VERSION,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            run_id: 4,
            studio: "https://x.instructuremedia.com".into(),
            history: "state/history.db".into(),
            config_sha256: config_fingerprint("x"),
            desired_sha256: "0".into(),
            guard: Some("max_removals".into()),
            digest: digest::digest(&actions),
            actions,
        }
    }

    #[test]
    fn round_trip_private_and_edits_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.json");
        let plan = sample();
        plan.write(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(SavedPlan::read(&path).unwrap(), plan);

        let edited = std::fs::read_to_string(&path)
            .unwrap()
            .replace("a@x.edu", "b@x.edu");
        std::fs::write(&path, edited).unwrap();
        let e = SavedPlan::read(&path).unwrap_err().to_string();
        assert!(e.contains("plan.json") && e.contains("was edited"), "{e}");

        std::fs::write(&path, "{\"format\": 1").unwrap();
        let e = SavedPlan::read(&path).unwrap_err().to_string();
        assert!(e.contains("is not a saved plan (line 1"), "{e}");

        let e = SavedPlan::read(&dir.path().join("none.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.json: cannot be read"), "{e}");
        let e = SavedPlan::read(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
