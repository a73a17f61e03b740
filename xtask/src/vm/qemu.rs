//! Booting a guest under qemu with a deadline, its console saved to a file
//! and echoed to ours.
use std::{
    fs,
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// How to run qemu.
pub struct Machine {
    /// qemu-system-x86_64, or `$SENSOR_QEMU`.
    pub qemu: PathBuf,
    /// `tcg` (always works here) or `kvm`.
    pub accel: String,
    pub memory_mib: u32,
    pub cpus: u32,
}

/// One boot.
pub struct Boot<'a> {
    pub kernel: &'a Path,
    pub initramfs: &'a Path,
    pub cmdline: &'a str,
    /// Host directory the guest sees read-write as the `out` 9p tag.
    pub out: &'a Path,
    /// Host directory the guest sees read-only as the `repo` 9p tag.
    pub repo: &'a Path,
    pub timeout: Duration,
    pub console: &'a Path,
}

impl Machine {
    /// Fails with what to do when qemu is not there or does not run.
    pub fn check(&self) -> Result<String> {
        let out = Command::new(&self.qemu)
            .arg("--version")
            .output()
            .with_context(|| {
                format!(
                    "{} not found: install Debian's qemu-system-x86 (cargo xtask vm-test does) or point SENSOR_QEMU at a qemu-system-x86_64",
                    self.qemu.display()
                )
            })?;
        if !out.status.success() {
            bail!(
                "{} --version failed ({}): {}",
                self.qemu.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned())
    }

    /// Boots and waits for the guest to power off; a guest still running at
    /// the deadline is killed and reported as hung.
    pub fn boot(&self, b: &Boot) -> Result<()> {
        let mut child = Command::new(&self.qemu)
            .args(["-M", "pc", "-accel"])
            // One host thread for all vCPUs: with one per vCPU (qemu 7.2),
            // a 6.12 guest oopsed on an int3 left by cross-CPU text patching
            // (tracepoint static keys flipped by parallel attaches).
            .arg(if self.accel == "tcg" {
                "tcg,thread=single".to_owned()
            } else {
                self.accel.clone()
            })
            .args(["-cpu", "max", "-smp"])
            .arg(self.cpus.to_string())
            .arg("-m")
            .arg(format!("{}M", self.memory_mib))
            .args([
                "-display",
                "none",
                "-no-reboot",
                "-nic",
                "none",
                "-monitor",
                "none",
                "-serial",
                "stdio",
            ])
            .arg("-kernel")
            .arg(b.kernel)
            .arg("-initrd")
            .arg(b.initramfs)
            .arg("-append")
            .arg(b.cmdline)
            .arg("-virtfs")
            .arg("local,path=/,mount_tag=root,security_model=none,readonly=on,multidevs=remap")
            .arg("-virtfs")
            .arg(format!(
                "local,path={},mount_tag=out,security_model=none",
                b.out.display()
            ))
            .arg("-virtfs")
            .arg(format!(
                "local,path={},mount_tag=repo,security_model=none,readonly=on,multidevs=remap",
                b.repo.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", self.qemu.display()))?;
        let log = fs::File::create(b.console)
            .with_context(|| format!("creating {}", b.console.display()))?;
        let echo = |mut from: Box<dyn std::io::Read + Send>, mut log: fs::File| {
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let _ = log.write_all(&buf[..n]);
                    let _ = std::io::stderr().write_all(&buf[..n]);
                }
            })
        };
        let readers = [
            echo(Box::new(child.stdout.take().unwrap()), log.try_clone()?),
            echo(Box::new(child.stderr.take().unwrap()), log),
        ];
        let deadline = Instant::now() + b.timeout;
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                for r in readers {
                    let _ = r.join();
                }
                bail!(
                    "guest hung: still running after {} s, killed; console in {}",
                    b.timeout.as_secs(),
                    b.console.display()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        for r in readers {
            let _ = r.join();
        }
        if !status.success() {
            bail!("qemu failed ({status}); console in {}", b.console.display());
        }
        Ok(())
    }
}
