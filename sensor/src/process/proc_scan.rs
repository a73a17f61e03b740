//! Seeds the process table from /proc at start, so processes that started
//! before the sensor are attributed like the rest (the idea of Tetragon's
//! procevents). Unreadable entries (a process that exits mid-scan, a kernel
//! thread without exe) are skipped or partially filled, never fatal.
use std::{fs, os::unix::ffi::OsStrExt as _};

use crate::text::Text;

/// What the scan learned about one process.
#[derive(Debug, Clone)]
pub struct Scanned {
    /// pid.
    pub pid: u32,
    /// Parent pid.
    pub ppid: u32,
    /// Start, clock ticks since boot.
    pub start_ticks: u64,
    /// Executable (empty for kernel threads or when unreadable).
    pub exe: Text,
    /// argv, exact bytes.
    pub args: Vec<Text>,
    /// Lines of /proc/<pid>/cgroup.
    pub cgroup: String,
}

/// Every process in /proc.
pub fn scan() -> Vec<Scanned> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.flatten().filter_map(|p| read(&p)).collect()
}

/// One process, for a pid that events mention but the table lacks (an
/// event lost before it, or a race with the start-up scan).
pub fn scan_one(pid: u32) -> Option<Scanned> {
    read(&procfs::process::Process::new(pid as i32).ok()?)
}

fn read(p: &procfs::process::Process) -> Option<Scanned> {
    let stat = p.stat().ok()?;
    let exe = p
        .exe()
        .map(|e| Text::from(e.as_os_str().as_bytes()))
        .unwrap_or_default();
    let cmdline = fs::read(format!("/proc/{}/cmdline", p.pid)).unwrap_or_default();
    Some(Scanned {
        pid: p.pid as u32,
        ppid: stat.ppid as u32,
        start_ticks: stat.starttime,
        exe,
        args: split_cmdline(&cmdline),
        cgroup: fs::read_to_string(format!("/proc/{}/cgroup", p.pid)).unwrap_or_default(),
    })
}

/// cmdline is NUL-separated with a trailing NUL; bytes kept exactly.
pub fn split_cmdline(raw: &[u8]) -> Vec<Text> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|&b| b == 0).map(Text::from).collect()
}

/// The cgroup2 path (`0::/path`) and the path in the v1 hierarchy holding
/// `controller`, from /proc/<pid>/cgroup text.
pub fn cgroup_paths<'a>(
    text: &'a str,
    controller: Option<&str>,
) -> (Option<&'a str>, Option<&'a str>) {
    let mut v2 = None;
    let mut v1 = None;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            v2 = Some(path);
        } else if controller.is_some_and(|c| ctrls.split(',').any(|x| x == c)) {
            v1 = Some(path);
        }
    }
    (v2, v1)
}

/// Clock ticks per second (USER_HZ), for converting kernel start times.
pub fn ticks_per_second() -> u64 {
    procfs::ticks_per_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_bytes_are_exact() {
        let args = split_cmdline(b"sh\0-c\0echo \xff\n\0");
        assert_eq!(
            args.iter()
                .map(|a| a.as_bytes().to_vec())
                .collect::<Vec<_>>(),
            vec![b"sh".to_vec(), b"-c".to_vec(), b"echo \xff\n".to_vec()]
        );
        assert!(split_cmdline(b"").is_empty());
    }

    #[test]
    fn cgroup_file_hybrid() {
        let t =
            "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/system.slice/docker-abc.scope\n";
        assert_eq!(
            cgroup_paths(t, Some("memory")),
            (Some("/system.slice/docker-abc.scope"), Some("/docker/abc"))
        );
        assert_eq!(
            cgroup_paths("garbage\n::\n", Some("memory")),
            (Some(""), None)
        );
    }

    #[test]
    fn scan_sees_this_process() {
        let me = std::process::id();
        let all = scan();
        let entry = all.iter().find(|p| p.pid == me).expect("own pid in /proc");
        assert!(entry.start_ticks > 0 && !entry.args.is_empty());
    }
}
