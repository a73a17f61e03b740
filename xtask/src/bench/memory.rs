//! The sensor's memory on a busy node (issue 8's target: RSS at most
//! 64 MiB with 10k live processes in 1k containers). The containers are
//! real: runc runs each from one shared read-only busybox root filesystem,
//! with the annotations a CRI runtime writes, in a kubepods cgroup.
use std::{
    collections::HashSet,
    fs,
    io::{BufRead as _, BufReader},
    os::unix::fs::symlink,
    path::Path,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use serde_json::Value;

use super::{Options, live_processes, watcher::Sensor, workload::Workload};

/// Starts the sensor, then `memory_containers` containers of
/// `memory_procs` processes each, and reports the sensor's resident memory
/// before and after, with what it recorded of them.
pub fn memory_cost(o: &Options, dir: &Path) -> Result<()> {
    let rootfs = dir.join("rootfs");
    busybox_rootfs(&rootfs)?;
    let config = container_config(dir, &rootfs, o.memory_procs)?;
    let sensor = Sensor::start(dir, &o.sensor_args)?;
    thread::sleep(Duration::from_secs(2));
    let idle = Memory::of(sensor.child.id())?;
    let before = live_processes()?;
    let started = Instant::now();
    let mut ids = Vec::with_capacity(o.memory_containers);
    let loaded = (|| -> Result<(Memory, usize, f64)> {
        for i in 0..o.memory_containers {
            let id = format!("5e{:030x}{:032x}", std::process::id(), i);
            run_detached(dir, &config, &id, i)?;
            ids.push(id);
        }
        let want = before + o.memory_containers * o.memory_procs;
        let deadline = Instant::now() + Duration::from_secs(120);
        while live_processes()? < want {
            if Instant::now() > deadline {
                bail!("only {} of {want} processes started", live_processes()?);
            }
            thread::sleep(Duration::from_millis(200));
        }
        let took = started.elapsed().as_secs_f64();
        // Past the ring's lag and the metadata lookups.
        thread::sleep(Duration::from_secs(5));
        Ok((Memory::of(sensor.child.id())?, live_processes()?, took))
    })();
    for id in &ids {
        let _ = Command::new("runc")
            .args(["delete", "--force", id])
            .stderr(Stdio::null())
            .status();
    }
    let out = sensor.output_files();
    sensor.stop_and_count(Workload::Exec, 0)?;
    let (loaded, live, took) = loaded?;
    let ours: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let (starts, named) = container_starts(&out, &ours)?;
    println!();
    println!("| state | live processes | containers | sensor RSS | sensor peak RSS | RSS / idle |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| sensor idle (baseline) | {before} | 0 | {} | {} | 1.00 |",
        mib(idle.rss_kb),
        mib(idle.peak_kb)
    );
    println!(
        "| {} containers started in {took:.0} s | {live} | {} | {} | {} | {:.2} |",
        ids.len(),
        ids.len(),
        mib(loaded.rss_kb),
        mib(loaded.peak_kb),
        loaded.rss_kb as f64 / idle.rss_kb as f64
    );
    println!();
    println!(
        "The sensor recorded {starts} of {} container starts, {named} with the pod and \
         image from the runtime state.",
        ids.len()
    );
    Ok(())
}

/// Resident and peak resident memory of a process.
struct Memory {
    rss_kb: u64,
    peak_kb: u64,
}

impl Memory {
    fn of(pid: u32) -> Result<Self> {
        let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
        Self::parse(&status).with_context(|| format!("/proc/{pid}/status"))
    }

    /// From the text of `/proc/<pid>/status`.
    fn parse(status: &str) -> Result<Self> {
        let field = |name: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
                .with_context(|| format!("no {name}"))
        };
        Ok(Self {
            rss_kb: field("VmRSS:")?,
            peak_kb: field("VmHWM:")?,
        })
    }
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

/// A busybox root filesystem that every container shares read-only.
fn busybox_rootfs(root: &Path) -> Result<()> {
    let busybox = Path::new("/usr/bin/busybox");
    ensure!(busybox.exists(), "busybox-static is not installed");
    for d in ["bin", "etc", "proc", "dev", "sys", "tmp"] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::copy(busybox, root.join("bin/busybox"))?;
    for applet in ["sh", "sleep"] {
        symlink("busybox", root.join("bin").join(applet))?;
    }
    Ok(())
}

/// `runc spec`'s config, made into a Kubernetes container whose shell
/// starts `procs - 1` sleepers and waits.
fn container_config(dir: &Path, rootfs: &Path, procs: usize) -> Result<Value> {
    let spec_dir = dir.join("spec");
    fs::create_dir_all(&spec_dir)?;
    let status = Command::new("runc")
        .arg("spec")
        .current_dir(&spec_dir)
        .status()
        .context("runc spec (is runc installed?)")?;
    ensure!(status.success(), "runc spec failed");
    let mut config: Value = serde_json::from_slice(&fs::read(spec_dir.join("config.json"))?)?;
    let script = format!("i=1; while [ $i -lt {procs} ]; do sleep 100000 & i=$((i+1)); done; wait");
    config["process"]["terminal"] = Value::Bool(false);
    config["process"]["args"] = serde_json::json!(["sh", "-c", script]);
    config["root"]["path"] = Value::String(rootfs.display().to_string());
    config["root"]["readonly"] = Value::Bool(true);
    Ok(config)
}

/// Runs container `id` (the `i`th) in the background, in a kubepods cgroup
/// with CRI annotations, as a kubelet would have it run.
fn run_detached(dir: &Path, template: &Value, id: &str, i: usize) -> Result<()> {
    let bundle = dir.join("bundles").join(i.to_string());
    fs::create_dir_all(&bundle)?;
    let mut config = template.clone();
    let pod = format!("00000000-0000-4000-8000-{i:012x}");
    config["linux"]["cgroupsPath"] = Value::String(format!("/kubepods/besteffort/pod{pod}/{id}"));
    config["annotations"] = serde_json::json!({
        "io.kubernetes.cri.container-name": "app",
        "io.kubernetes.cri.image-name": "registry.example/bench/app:1",
        "io.kubernetes.cri.sandbox-name": format!("bench-{i}"),
        "io.kubernetes.cri.sandbox-namespace": "bench",
    });
    fs::write(bundle.join("config.json"), serde_json::to_vec(&config)?)?;
    let status = Command::new("runc")
        .args(["run", "--detach", id])
        .current_dir(&bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .context("runc run --detach")?;
    ensure!(status.success(), "runc run --detach {id} failed");
    Ok(())
}

/// `container_start` records of the given containers in the sensor's
/// output, and how many of them carry the pod name from the state.
fn container_starts(files: &[std::path::PathBuf], ids: &HashSet<&str>) -> Result<(usize, usize)> {
    let mut seen = HashSet::new();
    let mut named = 0;
    for f in files {
        let file = fs::File::open(f).with_context(|| f.display().to_string())?;
        for line in BufReader::new(file).lines() {
            let line = line?;
            if !line.contains("\"container_start\"") {
                continue;
            }
            let v: Value = serde_json::from_str(&line)?;
            let c = &v["container"];
            let Some(id) = c["id"].as_str().filter(|id| ids.contains(id)) else {
                continue;
            };
            if seen.insert(id.to_owned()) && c["pod_name"].is_string() {
                named += 1;
            }
        }
    }
    Ok((seen.len(), named))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_reads_resident_and_peak_from_status() {
        let status =
            "Name:\tsensor\nVmPeak:\t  900000 kB\nVmHWM:\t   50856 kB\nVmRSS:\t   30656 kB\n";
        let m = Memory::parse(status).unwrap();
        assert_eq!((m.rss_kb, m.peak_kb), (30656, 50856));
        let err = Memory::parse("Name:\tkthreadd\n").err().unwrap();
        assert!(err.to_string().contains("VmRSS"), "{err}");
    }
}
