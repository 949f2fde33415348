//! The campaign folder: scanning `*.toml` files with a content fingerprint, and a `notify`
//! watcher (falling back to polling) that wakes the daemon when something changes. The daemon
//! also rescans on a timer, so a missed notification only delays a change.

use notify::{PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// What identifies one version of a file on disk: SHA-256 for campaign files, size and mtime for
/// contact lists (which may be large; the import compares their hash itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fingerprint {
    /// SHA-256 of the content.
    Content([u8; 32]),
    /// Size in bytes and modification time.
    Meta(u64, Option<SystemTime>),
    /// The file could not be read.
    Missing,
}

/// Fingerprint of a campaign file's content.
pub fn content_fingerprint(path: &Path) -> Fingerprint {
    match std::fs::read(path) {
        Ok(bytes) => Fingerprint::Content(Sha256::digest(&bytes).into()),
        Err(_) => Fingerprint::Missing,
    }
}

/// Fingerprint of a contact list from its metadata.
pub fn meta_fingerprint(path: &Path) -> Fingerprint {
    match std::fs::metadata(path) {
        Ok(m) => Fingerprint::Meta(m.len(), m.modified().ok()),
        Err(_) => Fingerprint::Missing,
    }
}

/// The `*.toml` files of `dir` by campaign id (file name without `.toml`), with their fingerprints.
///
/// Errors: the folder cannot be read.
pub fn scan(dir: &Path) -> std::io::Result<BTreeMap<String, (PathBuf, Fingerprint)>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            let id = super::validate::campaign_id(&path);
            let fp = content_fingerprint(&path);
            out.insert(id, (path, fp));
        }
    }
    Ok(out)
}

/// Keeps a folder watcher alive; dropping it stops the notifications.
pub enum FolderWatcher {
    /// Native notifications (inotify on Linux).
    Native(RecommendedWatcher),
    /// Polling, when native notifications are not available.
    Polling(PollWatcher),
}

/// Watches `dir` and sends `()` on `wake` whenever something in it changes. Tries native
/// notifications first and falls back to polling every `poll_interval`.
///
/// Errors: neither watcher could watch the folder.
pub fn watch(dir: &Path, poll_interval: Duration, wake: mpsc::Sender<()>) -> notify::Result<FolderWatcher> {
    let handler = move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            // A full channel already holds a wake-up; dropping this one loses nothing.
            let _ = wake.try_send(());
        }
    };
    let native = notify::recommended_watcher(handler.clone()).and_then(|mut w| {
        w.watch(dir, RecursiveMode::NonRecursive)?;
        Ok(w)
    });
    match native {
        Ok(w) => Ok(FolderWatcher::Native(w)),
        Err(e) => {
            tracing::warn!(error = %e, dir = %dir.display(), "Native file notifications unavailable; polling the campaign folder.");
            let mut w = PollWatcher::new(handler, notify::Config::default().with_poll_interval(poll_interval))?;
            w.watch(dir, RecursiveMode::NonRecursive)?;
            Ok(FolderWatcher::Polling(w))
        }
    }
}
