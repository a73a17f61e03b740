//! `sensor install`: places this binary, the systemd unit, a configuration
//! file and the default rules for a bare-metal host. What an operator may
//! have edited (the configuration, the rules) is never overwritten: a
//! differing shipped version is written beside it as `*.new`, which the
//! sensor does not load (it reads `*.yaml`). The binary and the unit are
//! the package's own and are replaced, each through a rename so a running
//! sensor is never left with a half-written file.
use std::{
    fs,
    io::{self, Write as _},
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use crate::rules::BUILTIN;

/// The unit, as shipped in deploy/systemd.
pub const UNIT: &str = include_str!("../../deploy/systemd/runtime-sensor.service");
/// The configuration the unit reads, as shipped in deploy/systemd.
pub const CONFIG: &str = include_str!("../../deploy/systemd/sensor.yaml");

/// Where things go, below a root (`/`, or a staging directory).
pub const BIN: &str = "usr/local/bin/sensor";
/// The unit file.
pub const UNIT_PATH: &str = "etc/systemd/system/runtime-sensor.service";
/// The configuration file.
pub const CONFIG_PATH: &str = "etc/runtime-sensor/sensor.yaml";
/// The rules directory.
pub const RULES_DIR: &str = "etc/runtime-sensor/rules";
/// Where the default output goes.
pub const LOG_DIR: &str = "var/log/runtime-sensor";

/// What became of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// Written (it was missing, or it is the package's own).
    Written(PathBuf),
    /// Already as shipped.
    Unchanged(PathBuf),
    /// Edited locally: kept, the shipped version written beside it.
    KeptWithNew(PathBuf),
}

impl std::fmt::Display for Placed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Written(p) => write!(f, "installed  {}", p.display()),
            Self::Unchanged(p) => write!(f, "unchanged  {}", p.display()),
            Self::KeptWithNew(p) => write!(
                f,
                "kept       {} (locally edited; the shipped version is {}.new)",
                p.display(),
                p.display()
            ),
        }
    }
}

/// Installs below `root` the binary at `exe` and everything it needs.
pub fn install(root: &Path, exe: &Path) -> io::Result<Vec<Placed>> {
    let mut placed = Vec::new();
    let binary = fs::read(exe).map_err(|e| at(exe, e))?;
    placed.push(replace(&root.join(BIN), &binary, 0o755)?);
    placed.push(replace(&root.join(UNIT_PATH), UNIT.as_bytes(), 0o644)?);
    placed.push(keep_local(
        &root.join(CONFIG_PATH),
        CONFIG.as_bytes(),
        0o600,
    )?);
    for (name, text) in BUILTIN {
        let file = Path::new(name).file_name().expect("a rule file name");
        placed.push(keep_local(
            &root.join(RULES_DIR).join(file),
            text.as_bytes(),
            0o644,
        )?);
    }
    let logs = root.join(LOG_DIR);
    fs::create_dir_all(&logs).map_err(|e| at(&logs, e))?;
    fs::set_permissions(&logs, fs::Permissions::from_mode(0o700)).map_err(|e| at(&logs, e))?;
    Ok(placed)
}

/// Writes `bytes` unless the file already holds them.
fn replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<Placed> {
    if fs::read(path).is_ok_and(|old| old == bytes) {
        return Ok(Placed::Unchanged(path.to_owned()));
    }
    write_new(path, bytes, mode)?;
    Ok(Placed::Written(path.to_owned()))
}

/// Writes `bytes` where nothing is; beside a local edit as `*.new`.
fn keep_local(path: &Path, bytes: &[u8], mode: u32) -> io::Result<Placed> {
    match fs::read(path) {
        Ok(old) if old == bytes => Ok(Placed::Unchanged(path.to_owned())),
        Ok(_) => {
            let mut new = path.as_os_str().to_owned();
            new.push(".new");
            write_new(Path::new(&new), bytes, mode)?;
            Ok(Placed::KeptWithNew(path.to_owned()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            write_new(path, bytes, mode)?;
            Ok(Placed::Written(path.to_owned()))
        }
        Err(e) => Err(at(path, e)),
    }
}

/// Writes a temporary file beside `path`, then renames it into place.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().expect("an absolute path");
    fs::create_dir_all(dir).map_err(|e| at(dir, e))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".installing");
    let tmp = PathBuf::from(tmp);
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| at(&tmp, e))?;
    file.write_all(bytes).map_err(|e| at(&tmp, e))?;
    file.sync_all().map_err(|e| at(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| at(path, e))
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_then_keeps_local_edits_and_replaces_its_own_files() {
        let root = tempfile::tempdir().unwrap();
        let exe = root.path().join("built-sensor");
        fs::write(&exe, b"binary v1").unwrap();
        let first = install(root.path(), &exe).unwrap();
        assert!(
            first.iter().all(|p| matches!(p, Placed::Written(_))),
            "{first:?}"
        );
        let bin = root.path().join(BIN);
        assert_eq!(fs::read(&bin).unwrap(), b"binary v1");
        assert_eq!(
            fs::metadata(&bin).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let config = root.path().join(CONFIG_PATH);
        assert_eq!(
            fs::metadata(&config).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::read_dir(root.path().join(RULES_DIR)).unwrap().count(),
            BUILTIN.len()
        );

        // An upgrade: a new binary, an edited configuration.
        fs::write(&exe, b"binary v2").unwrap();
        fs::write(&config, "rules: [/srv/rules]\n").unwrap();
        let second = install(root.path(), &exe).unwrap();
        assert_eq!(fs::read(&bin).unwrap(), b"binary v2");
        assert_eq!(
            fs::read_to_string(&config).unwrap(),
            "rules: [/srv/rules]\n"
        );
        let mut new = config.clone().into_os_string();
        new.push(".new");
        assert_eq!(fs::read_to_string(&new).unwrap(), CONFIG);
        assert!(second.contains(&Placed::KeptWithNew(config)));
        assert!(second.contains(&Placed::Unchanged(root.path().join(UNIT_PATH))));
        assert!(!root.path().read_dir().unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".installing")
        }));
    }
}
