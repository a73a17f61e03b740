//! A file that rotates by size and keeps a bounded number of old files:
//! `events.json` is renamed `events.json.1` (older ones shift up to
//! `.keep`, the oldest is deleted) when the next line would pass the limit.
//! Renaming rather than copying keeps a tailing shipper (Fluent Bit, Vector,
//! Filebeat) on the old file until it has read it, then on the new one.
use std::{
    fs::{File, OpenOptions},
    io::{self, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use tracing::warn;

use super::lines::{Lines, reason};

/// When to rotate and how much to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before a line would take the file past this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept besides the live one; 0 deletes at rotation.
    pub keep: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            max_bytes: 100 << 20,
            keep: 5,
        }
    }
}

/// Appends whole lines to a rotating file.
pub struct RotatingFile {
    path: PathBuf,
    /// None for what is not a regular file (`/dev/null`, a FIFO): never
    /// renamed.
    rotation: Option<Rotation>,
    /// Rotating failed (a read-only directory, say): not tried again until
    /// then, so one failure is not retried, and logged, on every line.
    rotate_after: Option<Instant>,
    lines: Lines<File>,
}

impl RotatingFile {
    /// Opens `path` for appending (created 0600: events are sensitive). A
    /// file an earlier run left ending mid-record gets a newline first, so
    /// the next record starts a line of its own; that record is counted
    /// as dropped (`torn_tail`).
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<Self> {
        let mut file = open_append(path)?;
        let meta = file.metadata()?;
        let mut size = meta.len();
        let torn = meta.is_file() && size > 0 && last_byte(path, size)? != b'\n';
        if torn {
            file.write_all(b"\n")?;
            size += 1;
            warn!(file = %path.display(), "the file ended mid-record (an earlier run was cut short): ended the line before appending");
        }
        let mut lines = Lines::new(file, path.display().to_string(), size);
        if torn {
            lines.count_dropped(reason::TORN_TAIL, 1);
        }
        Ok(Self {
            path: path.to_owned(),
            rotation: meta.is_file().then_some(rotation),
            rotate_after: None,
            lines,
        })
    }

    /// Writes `line` (which ends in a newline) whole to one file, or
    /// counts it as dropped (see [`Lines`]).
    pub fn write_line(&mut self, line: &[u8]) {
        let len = line.len() as u64;
        let size = self.lines.size();
        // An empty file takes any line: a line is never split.
        if let Some(rotation) = self.rotation
            && size > 0
            && size + len > rotation.max_bytes
            && !self.lines.paused()
            && self.rotate_after.is_none_or(|at| Instant::now() >= at)
            && let Err(e) = self.rotate(rotation.keep)
        {
            self.rotate_after = Some(Instant::now() + ROTATE_RETRY);
            warn!(file = %self.path.display(), error = %e, "rotation failed; writing on to the current file, trying again in a minute");
        }
        self.lines.push(line);
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) {
        self.lines.flush();
    }

    /// The file's path, for logs and metrics.
    pub fn name(&self) -> &str {
        self.lines.name()
    }

    /// Records dropped since the last call, by reason.
    pub fn take_dropped(&mut self) -> std::collections::BTreeMap<&'static str, u64> {
        self.lines.take_dropped()
    }

    fn rotate(&mut self, keep: u32) -> io::Result<()> {
        self.lines.flush();
        let numbered = |n: u32| {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        if keep == 0 {
            std::fs::remove_file(&self.path).or_else(not_found_is_fine)?;
        } else {
            std::fs::remove_file(numbered(keep)).or_else(not_found_is_fine)?;
            for n in (1..keep).rev() {
                std::fs::rename(numbered(n), numbered(n + 1)).or_else(not_found_is_fine)?;
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        self.lines.replace(open_append(&self.path)?, 0);
        Ok(())
    }
}

/// How long a failed rotation waits before the next try.
const ROTATE_RETRY: Duration = Duration::from_secs(60);

fn last_byte(path: &Path, size: u64) -> io::Result<u8> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(size - 1))?;
    let mut b = [0u8];
    f.read_exact(&mut b)?;
    Ok(b[0])
}

fn not_found_is_fine(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    // Elsewhere the file inherits its directory's ACL.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_in(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    #[test]
    fn rotates_at_the_size_limit_and_keeps_only_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.json");
        let rotation = Rotation {
            max_bytes: 25,
            keep: 2,
        };
        let mut file = RotatingFile::open(&path, rotation).unwrap();
        // Ten-byte lines: two fit in 25 bytes, a third would not.
        for n in 0..9 {
            file.write_line(format!("line-{n:03}\n").as_bytes());
        }
        file.flush();
        assert_eq!(lines_in(&path), ["line-008"]);
        assert_eq!(
            lines_in(&dir.path().join("events.json.1")),
            ["line-006", "line-007"]
        );
        assert_eq!(
            lines_in(&dir.path().join("events.json.2")),
            ["line-004", "line-005"]
        );
        assert!(!dir.path().join("events.json.3").exists(), "retention cap");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn a_line_longer_than_the_limit_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e");
        let mut file = RotatingFile::open(
            &path,
            Rotation {
                max_bytes: 4,
                keep: 1,
            },
        )
        .unwrap();
        file.write_line(b"0123456789\n");
        file.write_line(b"abcdefghij\n");
        file.flush();
        assert_eq!(lines_in(&path), ["abcdefghij"]);
        assert_eq!(lines_in(&dir.path().join("e.1")), ["0123456789"]);
    }

    #[test]
    fn an_existing_file_counts_towards_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e");
        std::fs::write(&path, "old-line\n").unwrap();
        let mut file = RotatingFile::open(
            &path,
            Rotation {
                max_bytes: 12,
                keep: 1,
            },
        )
        .unwrap();
        file.write_line(b"new-line\n");
        file.flush();
        assert_eq!(lines_in(&path), ["new-line"]);
        assert_eq!(lines_in(&dir.path().join("e.1")), ["old-line"]);
    }

    #[cfg(unix)]
    #[test]
    fn what_is_not_a_regular_file_is_never_renamed() {
        let mut null = RotatingFile::open(
            Path::new("/dev/null"),
            Rotation {
                max_bytes: 1,
                keep: 1,
            },
        )
        .unwrap();
        null.write_line(b"a\n");
        null.write_line(b"b\n");
        null.flush();
        assert!(Path::new("/dev/null").exists() && !Path::new("/dev/null.1").exists());
    }

    #[test]
    fn keep_zero_discards_at_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e");
        let mut file = RotatingFile::open(
            &path,
            Rotation {
                max_bytes: 10,
                keep: 0,
            },
        )
        .unwrap();
        file.write_line(b"first...\n");
        file.write_line(b"second..\n");
        file.flush();
        assert_eq!(lines_in(&path), ["second.."]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_file_ending_mid_record_gets_a_newline_before_new_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e");
        std::fs::write(&path, "{\"whole\":1}\n{\"torn\":").unwrap();
        let mut file = RotatingFile::open(&path, Rotation::default()).unwrap();
        file.write_line(b"{\"next\":2}\n");
        file.flush();
        assert_eq!(
            lines_in(&path),
            ["{\"whole\":1}", "{\"torn\":", "{\"next\":2}"]
        );
        assert_eq!(
            file.take_dropped(),
            std::collections::BTreeMap::from([(reason::TORN_TAIL, 1)])
        );
        // A clean file is left as it is.
        drop(file);
        let again = RotatingFile::open(&path, Rotation::default()).unwrap();
        drop(again);
        assert_eq!(lines_in(&path).len(), 3);
    }
}
