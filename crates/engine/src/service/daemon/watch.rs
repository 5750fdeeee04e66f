//! Watching the config and roles files for edits.
//!
//! The folders are watched, not the files: editors replace a file by rename, and Kubernetes
//! updates a mounted ConfigMap by swapping a `..data` symlink, both of which a watch on the
//! file itself would miss. Events are debounced into one reload request.

use crate::input::config::Config;
use crate::sync::reconcile::Trigger;
use notify::{RecursiveMode, Watcher};
use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// Quiet time after the last file event before a reload: editors write several times.
const DEBOUNCE: Duration = Duration::from_millis(700);

/// Watches the folders of the config and roles files (not the files: editors replace files by
/// rename, and Kubernetes swaps a `..data` symlink) and asks for a reload after a quiet time.
pub(super) struct FileWatch {
    watcher: notify::RecommendedWatcher,
    names: Arc<RwLock<HashSet<OsString>>>,
    dirs: HashSet<PathBuf>,
}

impl FileWatch {
    pub(super) fn start(tx: mpsc::Sender<Trigger>) -> notify::Result<FileWatch> {
        let names: Arc<RwLock<HashSet<OsString>>> = Arc::default();
        let watched = names.clone();
        let (events_tx, mut events_rx) = mpsc::unbounded_channel::<()>();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            if event.kind.is_access() {
                return;
            }
            let names = watched.read().unwrap_or_else(|e| e.into_inner());
            let relevant = event.paths.iter().any(|p| {
                p.file_name()
                    .is_some_and(|n| names.contains(n) || n.to_string_lossy().starts_with(".."))
            });
            if relevant {
                let _ = events_tx.send(());
            }
        })?;
        tokio::spawn(async move {
            while events_rx.recv().await.is_some() {
                // Debounce: wait until the folder has been quiet for a moment.
                loop {
                    match tokio::time::timeout(DEBOUNCE, events_rx.recv()).await {
                        Ok(Some(())) => continue,
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                tracing::info!("config or roles file changed; reloading");
                if tx.send(Trigger::Reload).await.is_err() {
                    return;
                }
            }
        });
        Ok(FileWatch {
            watcher,
            names,
            dirs: HashSet::new(),
        })
    }

    /// Watches the config file and the files its sources read (roles files, CSV files; adds
    /// folders, never drops any).
    pub(super) fn follow(&mut self, config: &Config, config_path: &Path) {
        let mut files: Vec<PathBuf> = vec![config_path.to_path_buf()];
        files.extend(config.source_files().into_iter().map(Path::to_path_buf));
        {
            let mut names = self.names.write().unwrap_or_else(|e| e.into_inner());
            names.clear();
            names.extend(
                files
                    .iter()
                    .filter_map(|f| f.file_name().map(|n| n.to_os_string())),
            );
        }
        for f in &files {
            let dir = f
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf();
            if self.dirs.contains(&dir) {
                continue;
            }
            match self.watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::debug!(dir = %dir.display(), "watching");
                    self.dirs.insert(dir);
                }
                Err(e) => tracing::warn!(
                    dir = %dir.display(),
                    error = %e,
                    "cannot watch this folder; its edits are picked up at the next scheduled run"
                ),
            }
        }
    }
}
