//! A file that rotates by size and keeps a bounded number of old files:
//! `events.json` is renamed `events.json.1` (older ones shift up to
//! `.keep`, the oldest is deleted) when the next line would pass the limit.
//! Renaming rather than copying keeps a tailing shipper (Fluent Bit, Vector,
//! Filebeat) on the old file until it has read it, then on the new one.
use std::{
    fs::{File, OpenOptions},
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

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
    file: BufWriter<File>,
    /// Bytes in the file, buffered ones included.
    size: u64,
}

impl RotatingFile {
    /// Opens `path` for appending (created 0600: events are sensitive).
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<Self> {
        let file = open_append(path)?;
        let meta = file.metadata()?;
        Ok(Self {
            path: path.to_owned(),
            rotation: meta.is_file().then_some(rotation),
            size: meta.len(),
            file: BufWriter::with_capacity(BUFFER, file),
        })
    }

    /// Writes `line` (which ends in a newline) whole to one file.
    pub fn write_line(&mut self, line: &[u8]) -> io::Result<()> {
        let len = line.len() as u64;
        // An empty file takes any line: a line is never split.
        if let Some(rotation) = self.rotation
            && self.size > 0
            && self.size + len > rotation.max_bytes
        {
            self.rotate(rotation.keep)?;
        }
        self.file.write_all(line)?;
        self.size += len;
        Ok(())
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    fn rotate(&mut self, keep: u32) -> io::Result<()> {
        self.file.flush()?;
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
        self.file = BufWriter::with_capacity(BUFFER, open_append(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

/// Lines gathered per write: the collector flushes once per loop.
const BUFFER: usize = 256 << 10;

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
            file.write_line(format!("line-{n:03}\n").as_bytes())
                .unwrap();
        }
        file.flush().unwrap();
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
        file.write_line(b"0123456789\n").unwrap();
        file.write_line(b"abcdefghij\n").unwrap();
        file.flush().unwrap();
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
        file.write_line(b"new-line\n").unwrap();
        file.flush().unwrap();
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
        null.write_line(b"a\n").unwrap();
        null.write_line(b"b\n").unwrap();
        null.flush().unwrap();
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
        file.write_line(b"first...\n").unwrap();
        file.write_line(b"second..\n").unwrap();
        file.flush().unwrap();
        assert_eq!(lines_in(&path), ["second.."]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
