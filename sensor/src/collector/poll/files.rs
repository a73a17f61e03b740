//! File creation and writes under watched directories, from the OS's own
//! notifications (notify: inotify on Linux, FSEvents on macOS,
//! ReadDirectoryChangesW on Windows). None of them names the writing
//! process, so these events carry no process: rules that need one cannot
//! match them (see docs/POLLING.md).
use std::{
    path::PathBuf,
    sync::mpsc::{Receiver, TryRecvError, channel},
};

use notify::{
    EventKind, RecommendedWatcher, RecursiveMode, Watcher as _,
    event::{CreateKind, ModifyKind},
};
use tracing::warn;

/// A file event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileChange {
    /// The file.
    pub path: PathBuf,
    /// Created (else written).
    pub created: bool,
}

/// Watches directories recursively.
pub struct FileWatcher {
    // Kept alive: dropping it stops the notifications.
    _watcher: RecommendedWatcher,
    rx: Receiver<notify::Result<notify::Event>>,
    /// Notification errors (queue overflows among them): lost file events.
    pub errors: u64,
}

impl FileWatcher {
    /// Watches each directory of `dirs`, recursively where it can. A
    /// subdirectory it may not read (another user's 0700 folder in /tmp)
    /// makes the recursive watch fail as a whole: the directory is then
    /// watched alone. What cannot be watched at all is skipped with a
    /// warning naming it.
    pub fn new(dirs: &[PathBuf]) -> anyhow::Result<Self> {
        let (tx, rx) = channel();
        let mut watcher = notify::recommended_watcher(tx)?;
        for dir in dirs {
            if !dir.is_dir() {
                warn!(dir = %dir.display(), "watched directory does not exist; skipped");
                continue;
            }
            if let Err(e) = watcher.watch(dir, RecursiveMode::Recursive) {
                warn!(dir = %dir.display(), error = %e, "cannot watch below this directory; watching it alone");
                if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                    warn!(dir = %dir.display(), error = %e, "cannot watch this directory; skipped");
                }
            }
        }
        Ok(Self {
            _watcher: watcher,
            rx,
            errors: 0,
        })
    }

    /// File changes since the last call, in arrival order.
    pub fn drain(&mut self) -> Vec<FileChange> {
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(Ok(event)) => {
                    let created = match event.kind {
                        EventKind::Create(CreateKind::File | CreateKind::Any) => true,
                        EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => false,
                        _ => continue,
                    };
                    for path in event.paths {
                        // One write is many notifications: keep the first.
                        if !out.iter().any(|c: &FileChange| c.path == path) {
                            out.push(FileChange { path, created });
                        }
                    }
                }
                Ok(Err(e)) => {
                    self.errors += 1;
                    warn!(error = %e, "file notification error; events may be lost");
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        out
    }
}
