//! Guest kernels: Debian's own kernel packages, which carry BTF, fetched with
//! apt into a private state directory (the host's apt sources and package
//! database are left alone) and unpacked once into the tools cache.
use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::cmd;

/// A kernel of the test matrix and the Debian release that ships it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelSpec {
    /// What `--kernel` takes: the upstream series.
    pub id: &'static str,
    /// Debian suite whose `linux-image-amd64` is that series.
    pub suite: &'static str,
    /// The sensor's LSM tier must load there: `bpf` is in Debian's default
    /// LSM list and the kernel has `bpf_task_pt_regs` (5.15+).
    pub lsm_tier: bool,
}

/// The matrix: the long-term series that production nodes run.
pub const KERNELS: &[KernelSpec] = &[
    KernelSpec {
        id: "5.10",
        suite: "bullseye",
        lsm_tier: false,
    },
    KernelSpec {
        id: "6.1",
        suite: "bookworm",
        lsm_tier: true,
    },
    KernelSpec {
        id: "6.12",
        suite: "trixie",
        lsm_tier: true,
    },
];

/// Parses `--kernel` values: series ids or `all`.
pub fn select(wanted: &[String]) -> Result<Vec<KernelSpec>> {
    let mut out = Vec::new();
    for w in wanted {
        let specs: Vec<KernelSpec> = if w == "all" {
            KERNELS.to_vec()
        } else {
            vec![*KERNELS.iter().find(|k| k.id == w).ok_or_else(|| {
                let ids: Vec<&str> = KERNELS.iter().map(|k| k.id).collect();
                anyhow!(
                    "unknown kernel {w:?}: choose one of {} or all",
                    ids.join(", ")
                )
            })?]
        };
        for s in specs {
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    Ok(out)
}

/// An unpacked kernel package.
#[derive(Debug)]
pub struct Kernel {
    /// `uname -r` of the guest.
    pub release: String,
    /// Debian package and version it came from.
    pub package: String,
    /// The bzImage.
    pub image: PathBuf,
    /// `lib/modules/<release>`.
    pub modules: PathBuf,
}

/// The unpacked kernel for `spec`, fetched unless cached (or `refresh`).
pub fn ensure(spec: &KernelSpec, cache: &Path, refresh: bool) -> Result<Kernel> {
    let dir = cache.join(spec.id);
    let unpacked = dir.join("kernel");
    if !refresh && let Ok(k) = open(&unpacked) {
        return Ok(k);
    }
    let apt = Apt::new(&dir.join("apt"), spec.suite)?;
    apt.update()?;
    let package = apt.kernel_package()?;
    let deb = apt.download(&package)?;
    let staging = dir.join("kernel.tmp");
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging)?;
    cmd::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&staging))
        .with_context(|| format!("unpacking {}", deb.display()))?;
    let name = deb
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .trim_end_matches(".deb")
        .to_owned();
    fs::write(staging.join("package"), &name)?;
    // Refuse a kernel without BTF before booting it: the sensor computes its
    // struct offsets from /sys/kernel/btf/vmlinux.
    let k = open(&staging)?;
    let _ = fs::remove_dir_all(&unpacked);
    fs::rename(&staging, &unpacked)?;
    eprintln!(
        "xtask: kernel {} ({}) unpacked in {}",
        k.release,
        name,
        unpacked.display()
    );
    open(&unpacked)
}

/// Reads an unpacked kernel package; errors if it is incomplete or lacks BTF.
fn open(root: &Path) -> Result<Kernel> {
    let package = fs::read_to_string(root.join("package"))
        .with_context(|| format!("{}: not a complete unpacked kernel", root.display()))?;
    // Packages of merged-/usr releases (trixie on) ship usr/lib/modules.
    let modules_root = ["lib/modules", "usr/lib/modules"]
        .into_iter()
        .map(|d| root.join(d))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| root.join("lib/modules"));
    let release = fs::read_dir(&modules_root)
        .with_context(|| format!("reading {}", modules_root.display()))?
        .filter_map(|e| e.ok())
        .find_map(|e| e.file_name().into_string().ok())
        .ok_or_else(|| anyhow!("{}: no kernel release", modules_root.display()))?;
    let config_path = root.join(format!("boot/config-{release}"));
    let config = fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    check_btf(&config).with_context(|| format!("{package} ({})", config_path.display()))?;
    let image = root.join(format!("boot/vmlinuz-{release}"));
    if !image.exists() {
        bail!("{package}: no {}", image.display());
    }
    Ok(Kernel {
        modules: modules_root.join(&release),
        release,
        package: package.trim().to_owned(),
        image,
    })
}

/// The kernel configuration must expose BTF for the sensor to run.
pub fn check_btf(config: &str) -> Result<()> {
    if config
        .lines()
        .any(|l| l.trim() == "CONFIG_DEBUG_INFO_BTF=y")
    {
        Ok(())
    } else {
        bail!("kernel lacks BTF: CONFIG_DEBUG_INFO_BTF=y is not in its config")
    }
}

/// apt with its own sources, lists and cache under one directory.
struct Apt {
    dir: PathBuf,
    opts: Vec<String>,
}

impl Apt {
    fn new(dir: &Path, suite: &str) -> Result<Self> {
        for sub in ["lists/partial", "cache/archives/partial", "debs"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let mirror = std::env::var("SENSOR_DEBIAN_MIRROR")
            .unwrap_or_else(|_| "http://deb.debian.org".to_owned());
        let sources = dir.join("sources.list");
        fs::write(
            &sources,
            format!(
                "deb {mirror}/debian {suite} main\n\
                 deb {mirror}/debian-security {suite}-security main\n"
            ),
        )?;
        let d = |p: &str| dir.join(p).display().to_string();
        let opts = [
            format!("Dir::Etc::SourceList={}", sources.display()),
            "Dir::Etc::SourceParts=/dev/null".into(),
            format!("Dir::State::Lists={}", d("lists")),
            format!("Dir::Cache={}", d("cache")),
            "Dir::State::status=/dev/null".into(),
            "APT::Architecture=amd64".into(),
            // Downloads land in our directory, which the _apt user cannot write.
            "APT::Sandbox::User=root".into(),
        ]
        .into_iter()
        .flat_map(|o| ["-o".to_owned(), o])
        .collect();
        Ok(Self {
            dir: dir.to_owned(),
            opts,
        })
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.args(&self.opts).current_dir(self.dir.join("debs"));
        c
    }

    fn update(&self) -> Result<()> {
        cmd::output(self.command("apt-get").args(["update", "-q"]))
            .context("apt-get update for the guest kernel (is the Debian mirror reachable?)")
            .map(drop)
    }

    /// The versioned image package the `linux-image-amd64` metapackage points at.
    fn kernel_package(&self) -> Result<String> {
        let out = cmd::output(
            self.command("apt-cache")
                .args(["depends", "linux-image-amd64"]),
        )?;
        image_dependency(&out).ok_or_else(|| anyhow!("linux-image-amd64 names no kernel:\n{out}"))
    }

    fn download(&self, package: &str) -> Result<PathBuf> {
        let debs = self.dir.join("debs");
        for e in fs::read_dir(&debs)? {
            fs::remove_file(e?.path())?;
        }
        cmd::output(self.command("apt-get").args(["download", "-q", package]))
            .with_context(|| format!("downloading {package}"))?;
        fs::read_dir(&debs)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|e| e == "deb"))
            .ok_or_else(|| anyhow!("apt-get download {package} left no .deb"))
    }
}

/// `Depends: linux-image-<release>` from `apt-cache depends` output.
fn image_dependency(depends: &str) -> Option<String> {
    depends.lines().find_map(|l| {
        let name = l.trim().strip_prefix("Depends: ")?.trim();
        name.starts_with("linux-image-").then(|| name.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_image_dependency() {
        let out = "linux-image-amd64\n  Depends: linux-image-6.1.0-41-amd64\n";
        assert_eq!(
            image_dependency(out).as_deref(),
            Some("linux-image-6.1.0-41-amd64")
        );
        assert_eq!(image_dependency("linux-image-amd64\n"), None);
    }

    #[test]
    fn btf_must_be_built_in() {
        check_btf("CONFIG_BPF=y\nCONFIG_DEBUG_INFO_BTF=y\n").unwrap();
        let e = check_btf("CONFIG_BPF=y\n# CONFIG_DEBUG_INFO_BTF is not set\n").unwrap_err();
        assert!(e.to_string().contains("lacks BTF"), "{e}");
    }

    #[test]
    fn kernel_selection() {
        let all = select(&["all".into()]).unwrap();
        assert_eq!(all.len(), KERNELS.len());
        let one = select(&["6.1".into(), "6.1".into()]).unwrap();
        assert_eq!(one, vec![KERNELS[1]]);
        let e = select(&["4.19".into()]).unwrap_err();
        assert!(e.to_string().contains("5.10, 6.1, 6.12"), "{e}");
    }
}
