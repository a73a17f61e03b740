//! The guest's initramfs: static busybox, the modules needed to mount the
//! host's root over 9p (in dependency order, read from each module's
//! `.modinfo`, since the package ships no modules.dep), and `init.sh`.
use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, anyhow, bail};
use object::{Object as _, ObjectSection as _};

use crate::cmd;

/// Modules the guest loads before anything else: the 9p root and virtio
/// transport, overlayfs for dockerd's overlay2 storage driver, and
/// tcp_diag for the polling collector's socket table (sock_diag netlink; the
/// guest cannot autoload it, its modules are not on the shared root).
const MODULES: &[&str] = &["virtio_pci", "9pnet_virtio", "9p", "overlay", "tcp_diag"];

const INIT: &str = include_str!("init.sh");

/// Builds `out` (a newc cpio archive) for the kernel whose modules are in `modules`.
pub fn build(modules: &Path, out: &Path) -> Result<()> {
    let staging = out.with_extension("d");
    let _ = fs::remove_dir_all(&staging);
    for d in ["bin", "modules", "proc", "sys", "dev", "newroot"] {
        fs::create_dir_all(staging.join(d))?;
    }
    let busybox = Path::new("/bin/busybox");
    fs::copy(busybox, staging.join("bin/busybox"))
        .with_context(|| format!("copying {} (package busybox-static)", busybox.display()))?;
    let init = staging.join("init");
    fs::write(&init, INIT)?;
    fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;

    let index = ModuleIndex::scan(modules)?;
    for (n, m) in index.load_order(MODULES)?.iter().enumerate() {
        let name = format!("{n:02}-{}.ko", m.name);
        fs::write(staging.join("modules").join(name), &m.image)?;
    }

    let list = cmd::output(Command::new("find").arg(".").current_dir(&staging))?;
    let archive = fs::File::create(out)?;
    let mut cpio = Command::new("cpio")
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(&staging)
        .stdin(Stdio::piped())
        .stdout(archive)
        .spawn()
        .context("starting cpio (package cpio)")?;
    std::io::Write::write_all(&mut cpio.stdin.take().unwrap(), list.as_bytes())?;
    let status = cpio.wait()?;
    if !status.success() {
        bail!("cpio failed: {status}");
    }
    fs::remove_dir_all(&staging)?;
    Ok(())
}

/// A module ready to insmod.
struct Module {
    name: String,
    image: Vec<u8>,
}

/// The modules of one kernel release, by name, and the built-in ones.
struct ModuleIndex {
    files: HashMap<String, PathBuf>,
    builtin: Vec<String>,
}

/// Module names treat `-` and `_` alike.
fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

impl ModuleIndex {
    fn scan(root: &Path) -> Result<Self> {
        let mut files = HashMap::new();
        let mut stack = vec![root.join("kernel")];
        while let Some(dir) = stack.pop() {
            for e in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
                let path = e?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if let Some(name) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.split_once(".ko"))
                    .map(|(stem, _)| canonical(stem))
                {
                    files.insert(name, path);
                }
            }
        }
        let builtin = fs::read_to_string(root.join("modules.builtin"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| Some(canonical(l.rsplit('/').next()?.split_once(".ko")?.0)))
            .collect();
        Ok(Self { files, builtin })
    }

    /// `wanted` and everything they depend on, dependencies first.
    fn load_order(&self, wanted: &[&str]) -> Result<Vec<Module>> {
        let mut order: Vec<Module> = Vec::new();
        for w in wanted {
            self.visit(&canonical(w), &mut order, &mut Vec::new())?;
        }
        Ok(order)
    }

    fn visit(&self, name: &str, order: &mut Vec<Module>, path: &mut Vec<String>) -> Result<()> {
        if order.iter().any(|m| m.name == name) || self.builtin.iter().any(|b| b == name) {
            return Ok(());
        }
        if path.iter().any(|p| p == name) {
            bail!("module dependency cycle: {} -> {name}", path.join(" -> "));
        }
        let file = self
            .files
            .get(name)
            .ok_or_else(|| anyhow!("module {name} is neither built in nor in the package"))?;
        let image = decompress(file)?;
        path.push(name.to_owned());
        for dep in depends(&image).with_context(|| format!("reading {}", file.display()))? {
            self.visit(&dep, order, path)?;
        }
        path.pop();
        order.push(Module {
            name: name.to_owned(),
            image,
        });
        Ok(())
    }
}

/// A module file's bytes, uncompressed (busybox insmod takes plain ELF).
fn decompress(file: &Path) -> Result<Vec<u8>> {
    let name = file.to_string_lossy();
    let tool = match name.rsplit('.').next() {
        Some("ko") => return fs::read(file).with_context(|| format!("reading {name}")),
        Some("xz") => "xz",
        Some("zst") => "zstd",
        Some("gz") => "gzip",
        _ => bail!("{name}: unknown module compression"),
    };
    let out = Command::new(tool)
        .arg("-dc")
        .arg(file)
        .output()
        .with_context(|| format!("starting {tool} for {name}"))?;
    if !out.status.success() {
        bail!(
            "{tool} -dc {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// The `depends=` list of a module's `.modinfo` section.
fn depends(image: &[u8]) -> Result<Vec<String>> {
    let elf = object::File::parse(image)?;
    let section = elf
        .section_by_name(".modinfo")
        .ok_or_else(|| anyhow!("no .modinfo section"))?;
    let data = section.data()?;
    Ok(data
        .split(|&b| b == 0)
        .filter_map(|entry| entry.strip_prefix(b"depends="))
        .flat_map(|list| {
            String::from_utf8_lossy(list)
                .split(',')
                .filter(|d| !d.is_empty())
                .map(canonical)
                .collect::<Vec<_>>()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF relocatable with a `.modinfo` section, as modules carry.
    fn module_with_modinfo(modinfo: &[u8]) -> Vec<u8> {
        use object::write;
        let mut obj = write::Object::new(
            object::BinaryFormat::Elf,
            object::Architecture::X86_64,
            object::Endianness::Little,
        );
        let id = obj.add_section(
            Vec::new(),
            b".modinfo".to_vec(),
            object::SectionKind::ReadOnlyData,
        );
        obj.append_section_data(id, modinfo, 1);
        obj.write().unwrap()
    }

    #[test]
    fn reads_dependencies_from_modinfo() {
        let image = module_with_modinfo(b"license=GPL\0depends=fscache,9pnet\0name=9p\0");
        assert_eq!(depends(&image).unwrap(), ["fscache", "9pnet"]);
        let none = module_with_modinfo(b"depends=\0name=virtio\0");
        assert!(depends(&none).unwrap().is_empty());
    }

    #[test]
    fn orders_dependencies_first_and_skips_builtins() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("kernel");
        fs::create_dir_all(&k).unwrap();
        let put = |name: &str, deps: &str| {
            let info = format!("depends={deps}\0name={name}\0");
            fs::write(
                k.join(format!("{name}.ko")),
                module_with_modinfo(info.as_bytes()),
            )
            .unwrap();
        };
        put("9p", "fscache,9pnet");
        put("9pnet", "");
        put("9pnet-virtio", "9pnet,virtio");
        fs::write(
            dir.path().join("modules.builtin"),
            "kernel/fs/fscache.ko\nkernel/drivers/virtio/virtio.ko\n",
        )
        .unwrap();
        let index = ModuleIndex::scan(dir.path()).unwrap();
        let order: Vec<String> = index
            .load_order(&["9p", "9pnet_virtio"])
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(order, ["9pnet", "9p", "9pnet_virtio"]);
        let e = index.load_order(&["overlay"]).err().unwrap();
        assert!(e.to_string().contains("overlay is neither built in"), "{e}");
    }
}
