//! Builds `sensor-ebpf` for the BPF target with the pinned nightly (aya-build)
//! and leaves the object in OUT_DIR for `include_bytes_aligned!`.
use std::{env, path::PathBuf};

use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    // Only the Linux build embeds the programs (see `loader`).
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return Ok(());
    }
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let package = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == "sensor-ebpf")
        .ok_or_else(|| anyhow!("sensor-ebpf package not found"))?;
    let root = package
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", package.manifest_path))?;

    // The nightly is pinned once, in sensor-ebpf/rust-toolchain.toml.
    let pin = std::fs::read_to_string(root.join("rust-toolchain.toml"))
        .context("read sensor-ebpf/rust-toolchain.toml")?;
    let nightly = pin
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .map(|c| c.trim_matches('"').to_owned())
        .ok_or_else(|| anyhow!("no channel in sensor-ebpf/rust-toolchain.toml"))?;
    println!("cargo::rerun-if-changed={root}/rust-toolchain.toml");

    // bpf-linker lives where `cargo xtask setup` installs it unless it is
    // already on PATH; see xtask/src/setup.rs.
    println!("cargo::rerun-if-env-changed=SENSOR_TOOLS_DIR");
    if let Some(dir) = tools_dir() {
        let bin = dir.join(format!("bpf-linker-{nightly}")).join("bin");
        if bin.is_dir() {
            let path = env::var_os("PATH").unwrap_or_default();
            let mut paths = vec![bin];
            paths.extend(env::split_paths(&path));
            // SAFETY: set_var is unsound only while another thread reads or
            // writes the environment; this build script starts none before
            // aya_build runs, after this.
            unsafe { env::set_var("PATH", env::join_paths(paths)?) };
        }
    }

    aya_build::build_ebpf(
        [aya_build::Package {
            name: package.name.as_str(),
            root_dir: root.as_str(),
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&nightly),
    )
}

fn tools_dir() -> Option<PathBuf> {
    env::var_os("SENSOR_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sensor-tools")))
}
