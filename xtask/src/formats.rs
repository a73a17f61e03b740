//! The independent validators of the OCSF and ECS outputs, for
//! tests/validate/formats.py (the replay and kernel tests run it): a
//! virtualenv with jsonschema and ocsf-json-schema, whose bundled export of
//! OCSF 1.4.0 is checked against its pinned digest, and ECS 8.17's field
//! definitions, written as JSON into the virtualenv (`ecs-8.17.0.json`).
//! The tests find the virtualenv through [`ENV`].
//!
//! Elastic publishes its field definitions on npm (@elastic/ecs) for some
//! releases only, 8.11 and 9.0 but not 8.17. ECS 8.17 is 9.0 without the
//! eight fields 9.0 added and with the two it removed, which 8.11 still
//! defines; [`ADDED_IN_9_0`] and [`REMOVED_IN_9_0`] are the difference of
//! elastic/ecs's generated/ecs/ecs_flat.yml between the tags v8.17.0 and
//! v9.0.0 (no field changed type or allowed values between them). Built
//! so, the set equalled v8.17.0's ecs_flat.yml in every name, type,
//! allowed value and required flag when this was written.
use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::{cmd, setup};

/// What the tests read: the virtualenv's directory.
pub const ENV: &str = "SENSOR_FORMAT_VALIDATOR";

const REQUIREMENTS: &[&str] = &["jsonschema==4.26.0", "ocsf-json-schema==1.2.0"];

/// sha256 of ocsf-json-schema's `ocsf/1.4.0.json`, the OCSF server's export
/// of 1.4.0; it matched the ocsf-schema repository at tag 1.4.0 attribute
/// for attribute (1,660 attributes, every requirement) when pinned.
const OCSF_EXPORT_SHA256: &str = "56fa01e200346d88659e98b86857854420f360e0636ad98e8321ff5ef23d28e6";

/// @elastic/ecs releases: package version, the ECS version it carries, and
/// the sha512 of its tarball (the registry's `dist.integrity`, in hex).
const ECS_8_11: (&str, &str, &str) = (
    "8.11.5",
    "8.11.0",
    "4bbaa421a46b287ca253ac30d2be6ab7c98e87cc0af30dcba4d74c6f4ab1ba3eb0c509a7e9356967d0f1c4808654ac1a3db40862e3539813d2528725f9584837",
);
const ECS_9_0: (&str, &str, &str) = (
    "9.0.0",
    "9.0.0",
    "15514e146828f03d97a18b3fd8cf60682efa5732a130a92b56a9c691bb90001d022a8005cbd9392362bb20c983b3a978479395162264eaec1f2e24d7c87ca30c",
);

/// Fields of ECS 9.0.0 that 8.17.0 does not define.
const ADDED_IN_9_0: &[&str] = &[
    "dll.origin_referrer_url",
    "dll.origin_url",
    "file.origin_referrer_url",
    "file.origin_url",
    "threat.enrichments.indicator.file.origin_referrer_url",
    "threat.enrichments.indicator.file.origin_url",
    "threat.indicator.file.origin_referrer_url",
    "threat.indicator.file.origin_url",
];

/// Fields of ECS 8.17.0 (and 8.11.0) that 9.0.0 removed.
const REMOVED_IN_9_0: &[&str] = &["process.parent.pgid", "process.pgid"];

/// The ECS release the encoder follows.
const ECS_VERSION: &str = "8.17.0";

/// Installs the validators if missing; returns the virtualenv's directory.
pub fn ensure() -> Result<PathBuf> {
    let venv = setup::ensure_venv("format-validators-1", REQUIREMENTS)?;
    check_ocsf_export(&venv)?;
    let out = venv.join(format!("ecs-{ECS_VERSION}.json"));
    if !out.exists() {
        ecs_8_17(&out).with_context(|| format!("ECS {ECS_VERSION} field definitions"))?;
    }
    Ok(venv)
}

/// ECS 8.17.0's flat field definitions, from 9.0.0's and 8.11.0's, as
/// `{"version": "8.17.0", "fields": {flat name: definition}}`.
fn ecs_8_17(out: &std::path::Path) -> Result<()> {
    let mut fields = ecs_fields(ECS_9_0)?;
    let older = ecs_fields(ECS_8_11)?;
    for name in ADDED_IN_9_0 {
        if fields.remove(*name).is_none() {
            bail!("ECS 9.0.0 does not define {name}, which it added");
        }
    }
    for name in REMOVED_IN_9_0 {
        let field = older
            .get(*name)
            .with_context(|| format!("ECS 8.11.0 does not define {name}"))?;
        fields.insert((*name).to_owned(), field.clone());
    }
    let json = serde_json::json!({"version": ECS_VERSION, "fields": fields});
    let tmp = out.with_extension("tmp");
    fs::write(&tmp, json.to_string())?;
    fs::rename(&tmp, out)?;
    Ok(())
}

/// The export the validator reads is the one that was checked.
fn check_ocsf_export(venv: &std::path::Path) -> Result<()> {
    let python = venv.join("bin/python");
    let path = cmd::output(Command::new(&python).args([
        "-c",
        "import ocsf_json_schema, pathlib; \
         print(pathlib.Path(ocsf_json_schema.__file__).parent / 'ocsf' / '1.4.0.json')",
    ]))?;
    let digest = cmd::output(Command::new("sha256sum").arg(path.trim()))?;
    if digest.split_whitespace().next() != Some(OCSF_EXPORT_SHA256) {
        bail!(
            "{}: sha256 {} is not the pinned OCSF 1.4.0 export",
            path.trim(),
            digest.trim()
        );
    }
    Ok(())
}

type Fields = serde_json::Map<String, serde_json::Value>;

/// One @elastic/ecs release's flat field definitions: `npm pack`ed, its
/// digest checked, read by node.
fn ecs_fields((package, ecs, sha512): (&str, &str, &str)) -> Result<Fields> {
    ensure_node()?;
    let dir = std::env::temp_dir().join(format!("sensor-ecs-{package}-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let result = (|| {
        // It prints the tarball's name, which is known.
        cmd::output(
            Command::new("npm")
                .args(["pack", "--silent", &format!("@elastic/ecs@{package}")])
                .arg("--pack-destination")
                .arg(&dir)
                .current_dir(&dir),
        )?;
        let tarball = dir.join(format!("elastic-ecs-{package}.tgz"));
        let digest = cmd::output(Command::new("sha512sum").arg(&tarball))?;
        if digest.split_whitespace().next() != Some(sha512) {
            bail!("{}: not the pinned sha512", tarball.display());
        }
        cmd::run(
            Command::new("tar")
                .arg("xzf")
                .arg(&tarball)
                .arg("-C")
                .arg(&dir),
        )?;
        // The package's CommonJS build exports EcsVersion and EcsFlat.
        let json = cmd::output(
            Command::new("node")
                .args([
                    "-e",
                    "const e = require(process.argv[1]);\
                     process.stdout.write(JSON.stringify({version: e.EcsVersion, fields: e.EcsFlat}))",
                ])
                .arg(dir.join("package")),
        )?;
        let mut value: serde_json::Value = serde_json::from_str(&json)?;
        if value["version"] != ecs {
            bail!("the package says ECS {}, not {ecs}", value["version"]);
        }
        match value["fields"].take() {
            serde_json::Value::Object(fields) => Ok(fields),
            _ => bail!("the package has no EcsFlat object"),
        }
    })();
    fs::remove_dir_all(&dir)?;
    result.with_context(|| format!("@elastic/ecs {package}"))
}

/// node and npm: the machine's, else Debian's.
fn ensure_node() -> Result<()> {
    let works = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works("node") && works("npm") {
        return Ok(());
    }
    setup::ensure_packages(&["nodejs", "npm"])
}
