//! cgroup id -> path, for the cgroup2 hierarchy and the tracked v1 one.
//!
//! Events carry cgroup ids (cheap in the kernel); paths name containers.
//! The index is built by walking the mounted hierarchies at start and kept
//! current by cgroup_mkdir/cgroup_rmdir events, whose ids are the directory
//! inode numbers the walk reads.
use std::{
    collections::HashMap,
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// Directory depth the start-up walk follows (kubepods paths are ~5 deep).
const MAX_DEPTH: usize = 12;

/// Known cgroups.
#[derive(Default, Debug)]
pub struct CgroupIndex {
    v2: HashMap<u64, String>,
    v1: HashMap<u64, String>,
    /// Hierarchy id of the tracked v1 controller (from /proc/cgroups).
    v1_hierarchy: Option<u32>,
}

/// Where the hierarchies are mounted.
#[derive(Clone, Debug, Default)]
pub struct CgroupMounts {
    /// cgroup2 mount point (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`).
    pub v2: Option<PathBuf>,
    /// Mount point of the tracked v1 controller, e.g. `/sys/fs/cgroup/memory`.
    pub v1: Option<PathBuf>,
}

impl CgroupMounts {
    /// Reads /proc/self/mountinfo for the cgroup2 mount and `controller`'s v1 mount.
    pub fn discover(controller: Option<&str>) -> Self {
        let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Self::parse(&text, controller)
    }

    /// Parses mountinfo text.
    pub fn parse(mountinfo: &str, controller: Option<&str>) -> Self {
        let mut m = Self::default();
        for line in mountinfo.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let mount_point = pre.split_whitespace().nth(4).map(PathBuf::from);
            let mut f = post.split_whitespace();
            match (f.next(), f.nth(1)) {
                (Some("cgroup2"), _) if m.v2.is_none() => m.v2 = mount_point,
                (Some("cgroup"), Some(opts))
                    if m.v1.is_none()
                        && controller.is_some_and(|c| opts.split(',').any(|o| o == c)) =>
                {
                    m.v1 = mount_point
                }
                _ => {}
            }
        }
        m
    }
}

/// Hierarchy id of a v1 controller from /proc/cgroups.
pub fn v1_hierarchy_id(proc_cgroups: &str, controller: &str) -> Option<u32> {
    proc_cgroups.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next()? == controller).then(|| f.next()?.parse().ok())?
    })
}

impl CgroupIndex {
    /// Walks the mounted hierarchies.
    pub fn scan(mounts: &CgroupMounts, controller: Option<&str>) -> Self {
        let mut index = Self::default();
        if let Some(root) = &mounts.v2 {
            walk(root, root, 0, &mut index.v2);
        }
        if let Some(root) = &mounts.v1 {
            walk(root, root, 0, &mut index.v1);
            let proc_cgroups = fs::read_to_string("/proc/cgroups").unwrap_or_default();
            index.v1_hierarchy = controller.and_then(|c| v1_hierarchy_id(&proc_cgroups, c));
        }
        index
    }

    /// Records a new cgroup directory (from a cgroup_mkdir event).
    pub fn insert(&mut self, hierarchy_id: u32, id: u64, path: &str) {
        if hierarchy_id == 0 {
            self.v2.insert(id, path.to_owned());
        } else if Some(hierarchy_id) == self.v1_hierarchy {
            self.v1.insert(id, path.to_owned());
        }
    }

    /// Forgets a removed cgroup directory.
    pub fn remove(&mut self, hierarchy_id: u32, id: u64) {
        if hierarchy_id == 0 {
            self.v2.remove(&id);
        } else if Some(hierarchy_id) == self.v1_hierarchy {
            self.v1.remove(&id);
        }
    }

    /// Path of a cgroup2 id.
    pub fn v2_path(&self, id: u64) -> Option<&str> {
        self.v2.get(&id).map(String::as_str)
    }

    /// Path of a tracked-v1 id.
    pub fn v1_path(&self, id: u64) -> Option<&str> {
        self.v1.get(&id).map(String::as_str)
    }

    /// Number of known cgroups.
    pub fn len(&self) -> usize {
        self.v2.len() + self.v1.len()
    }

    /// True when nothing is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn walk(root: &Path, dir: &Path, depth: usize, out: &mut HashMap<u64, String>) {
    let Ok(meta) = fs::metadata(dir) else { return };
    let rel = dir
        .strip_prefix(root)
        .map(|r| format!("/{}", r.display()))
        .unwrap_or_else(|_| "/".into());
    out.insert(
        meta.ino(),
        if rel == "/" {
            rel
        } else {
            rel.trim_end_matches('/').to_owned()
        },
    );
    if depth >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(root, &e.path(), depth + 1, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hybrid_and_pure_v2_mounts() {
        let hybrid = "30 23 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
            31 30 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n\
            33 30 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
            34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct";
        let m = CgroupMounts::parse(hybrid, Some("memory"));
        assert_eq!(m.v2.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
        assert_eq!(m.v1.as_deref(), Some(Path::new("/sys/fs/cgroup/memory")));
        let pure = "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate";
        let m = CgroupMounts::parse(pure, None);
        assert_eq!(m.v2.as_deref(), Some(Path::new("/sys/fs/cgroup")));
        assert!(m.v1.is_none());
    }

    #[test]
    fn hierarchy_id_from_proc_cgroups() {
        let t = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\nmemory\t5\t40\t1\n";
        assert_eq!(v1_hierarchy_id(t, "memory"), Some(5));
        assert_eq!(v1_hierarchy_id(t, "pids"), None);
    }

    #[test]
    fn mkdir_and_rmdir_keep_the_index_current() {
        let mut i = CgroupIndex {
            v1_hierarchy: Some(5),
            ..Default::default()
        };
        i.insert(0, 10, "/a");
        i.insert(5, 11, "/b");
        i.insert(7, 12, "/other-hierarchy");
        assert_eq!(
            (i.v2_path(10), i.v1_path(11), i.v1_path(12)),
            (Some("/a"), Some("/b"), None)
        );
        i.remove(0, 10);
        assert_eq!(i.v2_path(10), None);
    }
}
