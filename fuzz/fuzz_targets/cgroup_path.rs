//! cgroup paths as the kernel reports them (cgroup_mkdir; a container can
//! name its own nested cgroups) and the /proc files they are read from
//! (/proc/<pid>/cgroup, /proc/self/mountinfo, /proc/cgroups): a container
//! is found only where a path names one, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor::{
    container::{
        cgroup_path::{self, CgroupContainer},
        cgroups::{CgroupMounts, v1_hierarchy_id},
    },
    process::proc_scan::cgroup_paths,
};

const RUNTIMES: &[&str] = &["docker", "containerd", "cri-o", "podman", "cri"];

/// What a container found in `path` must be: a 64-hex id that is one of
/// the path's own segments (or inside one), a known runtime, a pod uid
/// only in the UUID form.
fn check(path: &str, c: &CgroupContainer) {
    assert!(
        c.id.len() == 64 && c.id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{path:?}: id {:?}",
        c.id
    );
    assert!(
        path.split('/').any(|s| s.contains(c.id.as_str())),
        "{path:?}: id {} is in no segment",
        c.id
    );
    assert!(RUNTIMES.contains(&c.runtime.as_str()), "{path:?}: {c:?}");
    if let Some(uid) = &c.pod_uid {
        assert!(
            uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'),
            "{path:?}: pod uid {uid:?}"
        );
    }
}

fuzz_target!(|bytes: &[u8]| {
    // Paths reach the parser as text (lossy, as the cgroup index keeps them).
    let text = String::from_utf8_lossy(bytes);
    if let Some(c) = cgroup_path::parse(&text) {
        check(&text, &c);
    }
    // The same bytes as /proc/<pid>/cgroup: every path it gives is parsed.
    let (v2, v1) = cgroup_paths(&text, Some("memory"));
    for path in v2.into_iter().chain(v1) {
        if let Some(c) = cgroup_path::parse(path) {
            check(path, &c);
        }
    }
    let _ = CgroupMounts::parse(&text, Some("memory"));
    let _ = v1_hierarchy_id(&text, "memory");
});
