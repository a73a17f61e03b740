//! What is timed: loops of one syscall family, and a mixed developer task.
use std::{
    ffi::CString,
    fs,
    net::{TcpListener, TcpStream},
    os::unix::net::{UnixListener, UnixStream},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use super::Options;

/// One timed loop.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Workload {
    /// Write-opens of a file in a temporary directory: what the shipped
    /// rules ask for (staging), so the sensor captures every one.
    OpenCaptured,
    /// Read-only opens of a system file: no shipped rule can match one, so
    /// the sensor drops them in the kernel.
    OpenFiltered,
    /// fork + exec + wait of /bin/true.
    Exec,
    /// TCP loopback connect + accept.
    Connect,
    /// Unix-socket connect + accept: what local daemons see most, and what
    /// the shipped rules do not read (dropped in the kernel).
    ConnectUnix,
    /// Unpacking a source tree, searching it, compiling a file, deleting it.
    Mixed,
    /// getppid(2), which nothing reports: what every other syscall on the
    /// node pays while a watcher hooks syscall entry or exit.
    Syscall,
}

impl Workload {
    /// Its row in the table.
    pub fn name(self) -> &'static str {
        match self {
            Self::OpenCaptured => "open/close, captured (write-open in /tmp)",
            Self::OpenFiltered => "open/close, filtered (read-only /etc/passwd)",
            Self::Exec => "exec (/bin/true)",
            Self::Connect => "connect (TCP loopback)",
            Self::ConnectUnix => "connect (unix socket, filtered)",
            Self::Mixed => "mixed (tar x, grep -r, gcc -c, rm -r)",
            Self::Syscall => "any other syscall (getppid)",
        }
    }

    /// The record kind it causes, where one kind is what it measures.
    pub fn kind(self) -> Option<&'static str> {
        match self {
            Self::OpenCaptured | Self::OpenFiltered => Some("open"),
            Self::Exec => Some("exec"),
            Self::Connect | Self::ConnectUnix => Some("connect"),
            Self::Mixed | Self::Syscall => None,
        }
    }

    /// Iterations per timed run.
    pub fn count(self, o: &Options) -> u64 {
        match self {
            Self::OpenCaptured | Self::OpenFiltered => o.opens,
            Self::Exec => o.execs,
            Self::Connect | Self::ConnectUnix => o.connects,
            Self::Mixed => o.mixed,
            Self::Syscall => o.syscalls,
        }
    }

    /// Creates what the loop uses, untimed and before any watcher runs.
    pub fn prepare(self, dir: &Path) -> Result<()> {
        match self {
            Self::OpenCaptured => fs::write(dir.join("bench-open"), b"x")?,
            Self::Mixed => {
                let tree = dir.join("tree/src");
                fs::create_dir_all(&tree)?;
                // 200 small C files: enough path walks and reads to matter.
                for i in 0..200 {
                    fs::write(
                        tree.join(format!("unit{i}.c")),
                        format!(
                            "/* unit {i} */\n#include <stdio.h>\nint unit{i}(int x) {{ return x * {i} + 1; }}\n{}",
                            "// filler line of a source file\n".repeat(40)
                        ),
                    )?;
                }
                let status = Command::new("tar")
                    .args(["cf", "tree.tar", "-C", "tree", "src"])
                    .current_dir(dir)
                    .status()
                    .context("tar")?;
                if !status.success() {
                    bail!("tar cf failed");
                }
                fs::remove_dir_all(dir.join("tree"))?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Runs the workload `n` times; returns its wall time.
    pub fn run(self, n: u64, dir: &Path) -> Result<Duration> {
        match self {
            Self::OpenCaptured => open_loop(n, &dir.join("bench-open"), libc::O_WRONLY),
            Self::OpenFiltered => open_loop(n, Path::new("/etc/passwd"), libc::O_RDONLY),
            Self::Exec => {
                let start = Instant::now();
                for _ in 0..n {
                    let status = Command::new("/bin/true").status()?;
                    if !status.success() {
                        bail!("/bin/true failed");
                    }
                }
                Ok(start.elapsed())
            }
            Self::Connect => {
                // Connect and accept in one thread: the handshake completes in
                // the kernel before accept, so the loop never waits on a
                // backlog that a busy acceptor let fill up.
                let listener = TcpListener::bind("127.0.0.1:0")?;
                let addr = listener.local_addr()?;
                let start = Instant::now();
                for _ in 0..n {
                    let client = TcpStream::connect(addr)?;
                    let (server, _) = listener.accept()?;
                    drop((client, server));
                }
                Ok(start.elapsed())
            }
            Self::ConnectUnix => {
                let path = dir.join("bench.sock");
                let _ = fs::remove_file(&path);
                let listener = UnixListener::bind(&path)?;
                let start = Instant::now();
                for _ in 0..n {
                    let client = UnixStream::connect(&path)?;
                    let (server, _) = listener.accept()?;
                    drop((client, server));
                }
                Ok(start.elapsed())
            }
            Self::Syscall => {
                let start = Instant::now();
                for _ in 0..n {
                    // SAFETY: no arguments; cannot fail.
                    std::hint::black_box(unsafe { libc::getppid() });
                }
                Ok(start.elapsed())
            }
            Self::Mixed => {
                let work: PathBuf = dir.join("mixed");
                let start = Instant::now();
                for _ in 0..n {
                    fs::create_dir_all(&work)?;
                    let script = "tar xf ../tree.tar && grep -rc 'unit1' src > /dev/null \
                                  && gcc -O2 -c src/unit7.c -o unit7.o";
                    let status = Command::new("sh")
                        .args(["-c", script])
                        .current_dir(&work)
                        .status()?;
                    if !status.success() {
                        bail!("mixed workload failed: {script}");
                    }
                    fs::remove_dir_all(&work)?;
                }
                Ok(start.elapsed())
            }
        }
    }
}

/// Raw open + close: nothing but the two syscalls is timed.
fn open_loop(n: u64, file: &Path, flags: libc::c_int) -> Result<Duration> {
    let opener = Opener::new(file, flags)?;
    let start = Instant::now();
    for _ in 0..n {
        opener.open_close()?;
    }
    Ok(start.elapsed())
}

/// Opens one file and closes it again: the two raw syscalls, nothing else.
pub struct Opener<'a> {
    file: &'a Path,
    path: CString,
    flags: libc::c_int,
}

impl<'a> Opener<'a> {
    /// For `file`, with open `flags` (`O_CLOEXEC` is added).
    pub fn new(file: &'a Path, flags: libc::c_int) -> Result<Self> {
        Ok(Self {
            file,
            path: CString::new(file.as_os_str().as_encoded_bytes())?,
            flags: flags | libc::O_CLOEXEC,
        })
    }

    /// One open and close.
    #[inline]
    pub fn open_close(&self) -> Result<()> {
        // SAFETY: valid NUL-terminated path; the fd is closed at once.
        let fd = unsafe { libc::open(self.path.as_ptr(), self.flags) };
        if fd < 0 {
            bail!(
                "open {}: {}",
                self.file.display(),
                std::io::Error::last_os_error()
            );
        }
        // SAFETY: fd was just opened.
        unsafe { libc::close(fd) };
        Ok(())
    }
}
