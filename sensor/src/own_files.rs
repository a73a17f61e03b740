//! The sensor's own files: its binary, configuration, rule files and
//! output files, which nobody else should write. A fact about this process,
//! like its pid, so it is kept here for the `open.sensor_file` field rather
//! than threaded through every evaluation. Empty (nothing matches) until
//! [`protect`] is called, as in `sensor replay`.
use std::{
    path::{Path, PathBuf},
    sync::RwLock,
};

/// Files and directories (everything below counts).
static PROTECTED: RwLock<Vec<(Vec<u8>, bool)>> = RwLock::new(Vec::new());

/// Records `paths` (files, or directories whose contents count) as the
/// sensor's own, resolved as the kernel reports open paths: symlinks
/// followed; a file not created yet is resolved through its directory.
pub fn protect(paths: &[PathBuf]) {
    let mut resolved: Vec<(Vec<u8>, bool)> = paths.iter().filter_map(|p| resolve(p)).collect();
    resolved.sort();
    resolved.dedup();
    *PROTECTED.write().unwrap_or_else(|e| e.into_inner()) = resolved;
}

fn resolve(path: &Path) -> Option<(Vec<u8>, bool)> {
    let full = std::fs::canonicalize(path).ok().or_else(|| {
        let dir = std::fs::canonicalize(path.parent()?).ok()?;
        Some(dir.join(path.file_name()?))
    })?;
    let is_dir = full.is_dir();
    Some((full.into_os_string().into_encoded_bytes(), is_dir))
}

/// Whether `path` is one of the sensor's files, or below one of its
/// directories. Rotated outputs (`FILE.1`, ...) count with their file.
pub fn contains(path: &[u8]) -> bool {
    let protected = PROTECTED.read().unwrap_or_else(|e| e.into_inner());
    protected.iter().any(|(p, is_dir)| {
        let Some(rest) = path.strip_prefix(p.as_slice()) else {
            return false;
        };
        rest.is_empty()
            || (*is_dir && rest.starts_with(b"/"))
            || (!*is_dir && rest.starts_with(b".") && rest[1..].iter().all(u8::is_ascii_digit))
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn files_their_rotations_and_directory_contents_match() {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        let link = dir.path().join("link-to-rules");
        std::os::unix::fs::symlink(&rules, &link).unwrap();
        let out = dir.path().join("events.json");
        protect(&[link, out.clone(), PathBuf::from("/nonexistent-dir/x")]);
        let real = std::fs::canonicalize(dir.path()).unwrap();
        let p = |rel: &str| format!("{}/{rel}", real.display()).into_bytes();
        assert!(contains(&p("rules/local.yaml")));
        assert!(contains(&p("events.json")));
        assert!(contains(&p("events.json.3")));
        assert!(!contains(&p("events.json.bak")));
        assert!(!contains(&p("rules-old/x.yaml")));
        assert!(!contains(&p("events.jsonx")));
        protect(&[]);
        assert!(!contains(&p("events.json")));
    }
}
