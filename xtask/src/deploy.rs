//! The deployment files under deploy/: generates the Kubernetes rules
//! ConfigMap from rules/; validates every manifest offline with
//! kubernetes-validate (PyPI, pinned, in its own virtualenv) in strict mode
//! against several Kubernetes versions, and the systemd unit with
//! `systemd-analyze verify`.
use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::{cmd, setup};

/// kubernetes-validate release; it carries the schemas of 1.x releases.
const VALIDATOR_VERSION: &str = "1.37.0";

/// Oldest still-supported to newest, as of the validator above.
const KUBERNETES_VERSIONS: &[&str] = &["1.29.0", "1.31.0", "1.33.0", "1.35.0", "1.37.0"];

const CONFIGMAP: &str = "rules-configmap.yaml";

fn dir() -> PathBuf {
    cmd::root().join("deploy/kubernetes")
}

const UNIT: &str = "deploy/systemd/runtime-sensor.service";
const UNIT_CONFIG: &str = "deploy/systemd/sensor.yaml";

/// The rules ConfigMap for the rule files in rules/, one key per file.
pub fn rules_configmap() -> Result<String> {
    let mut files: Vec<PathBuf> = fs::read_dir(cmd::root().join("rules"))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "yaml"));
    files.sort();
    let mut out = String::from(
        "# Generated from rules/ by `cargo xtask manifests`; `cargo xtask test`\n\
         # fails when it is out of date. Edit the rule files, not this.\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: runtime-sensor-rules\n  \
         namespace: runtime-sensor\ndata:\n",
    );
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let text =
            fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        if text.contains('\t') || !text.ends_with('\n') || text.ends_with("\n\n") {
            bail!(
                "{}: tabs, or not exactly one final newline: cannot be a YAML block",
                file.display()
            );
        }
        out.push_str(&format!("  {name}: |\n"));
        for line in text.lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    Ok(out)
}

/// Writes the generated ConfigMap.
pub fn generate() -> Result<()> {
    let path = dir().join(CONFIGMAP);
    fs::write(&path, rules_configmap()?).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(())
}

/// Checks every deployment file.
pub fn check() -> Result<()> {
    check_kubernetes()?;
    check_systemd_unit()
}

/// `systemd-analyze verify` on the unit, pointed at the built binary (it
/// checks that ExecStart is executable). It exits 0 even for unknown keys
/// or bad values, so any output at all is a failure.
fn check_systemd_unit() -> Result<()> {
    setup::ensure_packages(&["systemd"])?;
    let binary = cmd::root().join("target/debug/sensor");
    if !binary.exists() {
        bail!("{} is not built (cargo build -p sensor)", binary.display());
    }
    // The configuration the unit reads must be one the binary accepts.
    let config = cmd::root().join(UNIT_CONFIG);
    let checked = Command::new(&binary)
        .args(["config", "check"])
        .arg(&config)
        .output()
        .context("running sensor config check")?;
    if !checked.status.success() {
        bail!(
            "{UNIT_CONFIG}: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
    }
    let unit = fs::read_to_string(cmd::root().join(UNIT))?
        .replace("/usr/local/bin/sensor", &binary.to_string_lossy());
    let dir = std::env::temp_dir().join(format!("sensor-unit-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let copy = dir.join("runtime-sensor.service");
    fs::write(&copy, unit)?;
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output();
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(&copy)
        .output();
    fs::remove_dir_all(&dir)?;
    let out = out.context("running systemd-analyze verify")?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || !said.trim().is_empty() {
        bail!("{UNIT}: systemd-analyze verify:\n{said}");
    }
    let exposure = security
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .and_then(|t| {
            t.lines()
                .find(|l| l.contains("Overall exposure level"))
                .map(|l| l.trim().trim_start_matches("→ ").to_owned())
        })
        .unwrap_or_else(|| "exposure level not reported".into());
    eprintln!("xtask: {UNIT} verifies; {exposure}");
    Ok(())
}

/// The ConfigMap is current and every manifest validates strictly against
/// every version; and the validator does refuse a broken one, so a silent
/// validator cannot pass them.
fn check_kubernetes() -> Result<()> {
    let committed = fs::read_to_string(dir().join(CONFIGMAP)).unwrap_or_default();
    if committed != rules_configmap()? {
        bail!(
            "deploy/kubernetes/{CONFIGMAP} is out of date with rules/: run `cargo xtask manifests`"
        );
    }
    let validator = ensure_validator()?;
    // The block scalars must read back as the rule files, byte for byte
    // (PyYAML comes with the validator).
    let python = validator.with_file_name("python");
    let roundtrip = Command::new(&python)
        .arg("-c")
        .arg(
            "import sys, yaml, pathlib\n\
             data = yaml.safe_load(open(sys.argv[1]))['data']\n\
             rules = pathlib.Path(sys.argv[2])\n\
             files = {p.name: p.read_text() for p in rules.glob('*.yaml')}\n\
             sys.exit(0 if data == files else 'the ConfigMap does not read back as rules/')",
        )
        .arg(dir().join(CONFIGMAP))
        .arg(cmd::root().join("rules"))
        .status()?;
    if !roundtrip.success() {
        bail!("deploy/kubernetes/{CONFIGMAP}: YAML does not read back as rules/");
    }
    let manifests = manifests()?;
    for version in KUBERNETES_VERSIONS {
        let status = Command::new(&validator)
            .args(["--strict", "--quiet", "-k", version])
            .args(&manifests)
            .status()
            .context("running kubernetes-validate")?;
        if !status.success() {
            bail!("deploy/kubernetes: manifests do not validate against Kubernetes {version}");
        }
    }
    let broken = tempfile_with(
        &fs::read_to_string(dir().join("daemonset.yaml"))?.replace("hostPID:", "hostPid:"),
    )?;
    let refused = !Command::new(&validator)
        .args(["--strict", "--quiet", "-k", KUBERNETES_VERSIONS[0]])
        .arg(&broken)
        .output()?
        .status
        .success();
    fs::remove_file(&broken)?;
    if !refused {
        bail!("kubernetes-validate accepted a DaemonSet with an unknown field: not strict");
    }
    eprintln!(
        "xtask: {} manifests validate (strict) against Kubernetes {}",
        manifests.len(),
        KUBERNETES_VERSIONS.join(", ")
    );
    Ok(())
}

/// The resources kustomization.yaml lists, each of which must exist.
fn manifests() -> Result<Vec<PathBuf>> {
    let kustomization = fs::read_to_string(dir().join("kustomization.yaml"))?;
    let mut listed = Vec::new();
    let mut in_resources = false;
    for line in kustomization.lines() {
        if line.starts_with("resources:") {
            in_resources = true;
        } else if in_resources {
            match line.trim().strip_prefix("- ") {
                Some(file) => listed.push(dir().join(file)),
                None => in_resources = line.starts_with(' '),
            }
        }
    }
    if listed.is_empty() {
        bail!("deploy/kubernetes/kustomization.yaml lists no resources");
    }
    for file in &listed {
        if !file.exists() {
            bail!(
                "kustomization.yaml lists {}, which does not exist",
                file.display()
            );
        }
    }
    Ok(listed)
}

fn tempfile_with(text: &str) -> Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("sensor-manifest-{}.yaml", std::process::id()));
    fs::write(&path, text)?;
    Ok(path)
}

/// kubernetes-validate in a virtualenv under the tools directory.
fn ensure_validator() -> Result<PathBuf> {
    let venv = setup::ensure_venv(
        &format!("kubernetes-validate-{VALIDATOR_VERSION}"),
        &[&format!("kubernetes-validate=={VALIDATOR_VERSION}")],
    )?;
    Ok(venv.join("bin/kubernetes-validate"))
}
