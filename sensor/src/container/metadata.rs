//! Container metadata from the runtimes' on-disk state, no network and no
//! runtime API needed: runc-family runtimes (runc directly, Docker,
//! containerd, CRI-O, podman all drive runc here) keep a `state.json` whose
//! labels point at the OCI bundle, and the bundle's `config.json` carries
//! the CRI annotations (pod, namespace, container name, image), the mounts
//! and the namespaces. Every read is a small local file; a missing or
//! corrupt one gives an error with the file, never a panic.
use std::{
    fs,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// Where runc-family runtimes keep container state (`<root>/<id>/state.json`);
/// `*` stands for one level of namespaces (containerd).
pub const STATE_ROOTS: &[&str] = &[
    "/run/runc",
    "/run/docker/runtime-runc/moby",
    "/run/containerd/runc/*",
    "/run/runc-ctrs",
];

/// What the runtime state says about a container.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMeta {
    /// Container name (CRI container name, or the runtime's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Image reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Kubernetes pod name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
    /// Kubernetes namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_namespace: Option<String>,
    /// Host paths bind-mounted into the container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bind_mounts: Vec<BindMount>,
    /// CAP_SYS_ADMIN in the bounding set (what `--privileged` grants and
    /// most escapes need).
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
    /// Shares the host's pid namespace.
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_pid: bool,
    /// Shares the host's network namespace.
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_network: bool,
    /// A container runtime socket (docker.sock, containerd.sock, crio.sock,
    /// podman.sock) is mounted in: control of the host.
    #[serde(default, skip_serializing_if = "is_false")]
    pub runtime_socket: bool,
}

/// One bind mount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    /// Host path.
    pub source: String,
    /// Path inside the container.
    pub destination: String,
    /// Mounted read-only.
    pub read_only: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Why metadata is unavailable.
#[derive(Debug, Error)]
pub enum MetaError {
    /// No runtime state for the id (runtime not runc-based, or already gone).
    #[error("no runtime state for container {0} under the known runc roots")]
    NotFound(String),
    /// A state file could not be read or parsed.
    #[error("{path}: {reason}")]
    Bad {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// Reads `path` and parses it with `parse`; either failing names the file.
fn read_with<T>(
    path: &Path,
    parse: impl FnOnce(&[u8]) -> Result<T, String>,
) -> Result<T, MetaError> {
    let bad = |reason: String| MetaError::Bad {
        path: path.to_owned(),
        reason,
    };
    let bytes = fs::read(path).map_err(|e| bad(e.to_string()))?;
    parse(&bytes).map_err(bad)
}

/// A container that only runtime state identifies: runc with a cgroup path
/// that follows no naming convention, e.g. `ctr run`'s `/<namespace>/<id>`.
/// The path's last segment is taken as the id and confirmed by the
/// runtime's own state directory; the runtime is named after that root.
pub fn container_by_state(
    path: &str,
    dirs: &StateDirs,
) -> Option<super::cgroup_path::CgroupContainer> {
    let candidate = path
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty() && !s.contains(".."))?;
    let state = state_file(candidate, &strs(&dirs.runc))?;
    let root = state.to_string_lossy();
    let runtime = if root.contains("containerd") {
        "containerd"
    } else if root.contains("docker") {
        "docker"
    } else {
        "runc"
    };
    Some(super::cgroup_path::CgroupContainer {
        id: candidate.to_owned(),
        runtime: runtime.to_owned(),
        pod_uid: None,
    })
}

/// The state.json of container `id`, searching `roots`.
fn state_file(id: &str, roots: &[&str]) -> Option<PathBuf> {
    for root in roots {
        if let Some(parent) = root.strip_suffix("/*") {
            let Ok(dirs) = fs::read_dir(parent) else {
                continue;
            };
            for ns in dirs.flatten() {
                let p = ns.path().join(id).join("state.json");
                if p.exists() {
                    return Some(p);
                }
            }
        } else {
            let p = Path::new(root).join(id).join("state.json");
            if p.exists() {
                return Some(p);
            }
        }
    }
    None
}

/// Docker's default data root, where `containers/<id>/config.v2.json`
/// holds the container's name and image.
pub const DOCKER_DATA_ROOT: &str = "/var/lib/docker";

/// Name and image from Docker's own container record, if present.
fn docker_names(id: &str, data_roots: &[&str]) -> Option<(String, String)> {
    data_roots.iter().find_map(|root| {
        let path = Path::new(root)
            .join("containers")
            .join(id)
            .join("config.v2.json");
        parse_docker_config(&fs::read(path).ok()?)
    })
}

/// Name and image from the bytes of Docker's `config.v2.json` (the same
/// fields the Engine API's container inspect answers with); `None` if
/// it is not JSON or names no container.
pub fn parse_docker_config(bytes: &[u8]) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    let name = v["Name"].as_str()?.trim_start_matches('/').to_owned();
    let image = v["Config"]["Image"].as_str().unwrap_or_default().to_owned();
    Some((name, image))
}

/// containers/storage (podman, CRI-O): `overlay-containers/containers.json`
/// lists every container with its names and image.
pub const CONTAINERS_STORAGE_ROOT: &str = "/var/lib/containers/storage";

/// Name and image from containers/storage's container list, if present.
fn storage_names(id: &str, storage_roots: &[&str]) -> Option<(String, String)> {
    storage_roots.iter().find_map(|root| {
        let path = Path::new(root).join("overlay-containers/containers.json");
        parse_storage_containers(&fs::read(path).ok()?, id)
    })
}

/// Name and image of container `id` from the bytes of containers/storage's
/// `containers.json`; `None` if it is not JSON or does not list `id`.
pub fn parse_storage_containers(bytes: &[u8], id: &str) -> Option<(String, String)> {
    let list: Value = serde_json::from_slice(bytes).ok()?;
    let entry = list.as_array()?.iter().find(|c| c["id"] == id)?;
    let name = entry["names"][0].as_str()?.to_owned();
    let meta: Value = entry["metadata"]
        .as_str()
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default();
    Some((
        name,
        meta["image-name"].as_str().unwrap_or_default().to_owned(),
    ))
}

/// True for the runtime's own setup process inside a new container (`runc
/// init`, which runc re-executes into the container's cgroup): it runs
/// before runc writes the state metadata comes from; the workload's exec
/// comes after.
pub fn is_runtime_setup(args: &[&[u8]]) -> bool {
    matches!(args, [exe, b"init", ..] if exe.rsplit(|&b| b == b'/').next() == Some(b"runc"))
}

/// Runtime flags that name where state lives, learned from the command
/// lines of runtime processes: `runc --root <dir>` (one per shim
/// invocation), `dockerd --data-root <dir>` and `-H unix://<socket>`,
/// `podman`/`crio --root <dir>`.
pub fn state_dir_flags(args: &[&[u8]]) -> Vec<(StateKind, String)> {
    let Some(name) = args
        .first()
        .map(|a| a.rsplit(|&b| b == b'/').next().unwrap_or(a))
    else {
        return Vec::new();
    };
    let flags: &[(StateKind, &[u8])] = match name {
        b"runc" | b"crun" => &[(StateKind::RuncRoot, b"--root")],
        b"dockerd" => &[
            (StateKind::DockerDataRoot, b"--data-root"),
            (StateKind::DockerSocket, b"-H"),
            (StateKind::DockerSocket, b"--host"),
        ],
        b"podman" | b"crio" => &[(StateKind::ContainersStorage, b"--root")],
        _ => return Vec::new(),
    };
    let mut found = Vec::new();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        for (kind, flag) in flags {
            let value = if a == flag {
                it.clone().next().copied()
            } else {
                a.strip_prefix(*flag)
                    .and_then(|rest| rest.strip_prefix(b"="))
            };
            let Some(v) = value.and_then(|v| std::str::from_utf8(v).ok()) else {
                continue;
            };
            match kind {
                // Only unix sockets; tcp:// hosts are not read.
                StateKind::DockerSocket => {
                    if let Some(path) = v.strip_prefix("unix://") {
                        found.push((*kind, path.to_owned()));
                    }
                }
                _ => found.push((*kind, v.to_owned())),
            }
        }
    }
    found
}

/// Which kind of state directory a flag named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateKind {
    /// A runc `--root`: `<dir>/<id>/state.json`.
    RuncRoot,
    /// A dockerd `--data-root`: `<dir>/containers/<id>/config.v2.json`.
    DockerDataRoot,
    /// A containers/storage root (podman, CRI-O).
    ContainersStorage,
    /// A dockerd API socket.
    DockerSocket,
}

/// Directories where runtimes keep what [`lookup`] reads.
#[derive(Clone, Debug)]
pub struct StateDirs {
    /// runc-family `--root`s.
    pub runc: Vec<String>,
    /// Docker data roots.
    pub docker: Vec<String>,
    /// containers/storage roots.
    pub storage: Vec<String>,
    /// Docker Engine API sockets.
    pub docker_sockets: Vec<String>,
}

impl Default for StateDirs {
    fn default() -> Self {
        Self {
            runc: STATE_ROOTS.iter().map(|s| (*s).to_owned()).collect(),
            docker: vec![DOCKER_DATA_ROOT.to_owned()],
            storage: vec![CONTAINERS_STORAGE_ROOT.to_owned()],
            docker_sockets: vec!["/var/run/docker.sock".to_owned()],
        }
    }
}

impl StateDirs {
    /// Adds a directory a runtime named; true if it was new.
    pub fn learn(&mut self, kind: StateKind, dir: String) -> bool {
        let list = match kind {
            StateKind::RuncRoot => &mut self.runc,
            StateKind::DockerDataRoot => &mut self.docker,
            StateKind::ContainersStorage => &mut self.storage,
            StateKind::DockerSocket => &mut self.docker_sockets,
        };
        let new = !list.contains(&dir);
        if new {
            list.push(dir);
        }
        new
    }
}

/// Metadata of container `id`: OCI bundle via the runc-family state, then
/// name and image from Docker's or containers/storage's records.
pub fn lookup(id: &str, dirs: &StateDirs) -> Result<ContainerMeta, MetaError> {
    let mut meta = lookup_runtime_state(id, &strs(&dirs.runc))?;
    let names =
        docker_names(id, &strs(&dirs.docker)).or_else(|| storage_names(id, &strs(&dirs.storage)));
    if let Some((name, image)) = names {
        meta.name = meta.name.or(Some(name));
        if !image.is_empty() {
            meta.image = meta.image.or(Some(image));
        }
    }
    Ok(meta)
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn lookup_runtime_state(id: &str, roots: &[&str]) -> Result<ContainerMeta, MetaError> {
    let state_path = state_file(id, roots).ok_or_else(|| MetaError::NotFound(id.to_owned()))?;
    let bundle = read_with(&state_path, parse_runc_state)?;
    read_with(&Path::new(&bundle).join("config.json"), parse_oci_config)
}

/// The OCI bundle directory a runc-family `state.json` names (its
/// `bundle=` label), from the file's bytes.
pub fn parse_runc_state(bytes: &[u8]) -> Result<String, String> {
    let state: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    state["config"]["labels"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .find_map(|l| l.strip_prefix("bundle="))
        .map(str::to_owned)
        .ok_or_else(|| "no bundle= label".into())
}

/// [`from_oci_config`] on the bytes of a bundle's `config.json`.
pub fn parse_oci_config(bytes: &[u8]) -> Result<ContainerMeta, String> {
    let config: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    Ok(from_oci_config(&config))
}

/// Reads the fields we use from an OCI runtime config.
pub fn from_oci_config(config: &Value) -> ContainerMeta {
    let ann = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| config["annotations"][*k].as_str().map(str::to_owned))
    };
    let mut meta = ContainerMeta {
        // containerd CRI, then CRI-O.
        name: ann(&[
            "io.kubernetes.cri.container-name",
            "io.kubernetes.container.name",
        ]),
        image: ann(&[
            "io.kubernetes.cri.image-name",
            "io.kubernetes.cri-o.ImageName",
            "org.opencontainers.image.ref.name",
        ]),
        pod_name: ann(&["io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name"]),
        pod_namespace: ann(&[
            "io.kubernetes.cri.sandbox-namespace",
            "io.kubernetes.pod.namespace",
        ]),
        ..Default::default()
    };
    for m in config["mounts"].as_array().into_iter().flatten() {
        let options: Vec<&str> = m["options"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let is_bind = m["type"] == "bind" || options.iter().any(|o| *o == "bind" || *o == "rbind");
        let (Some(source), Some(destination)) = (m["source"].as_str(), m["destination"].as_str())
        else {
            continue;
        };
        if !is_bind {
            continue;
        }
        if ["docker.sock", "containerd.sock", "crio.sock", "podman.sock"]
            .iter()
            .any(|s| source.ends_with(s))
        {
            meta.runtime_socket = true;
        }
        meta.bind_mounts.push(BindMount {
            source: source.to_owned(),
            destination: destination.to_owned(),
            read_only: options.contains(&"ro"),
        });
    }
    let namespaces: Vec<&Value> = config["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    // Absent from the list, or joined via the host's own /proc/1/ns path.
    let shares_host = |kind: &str| {
        !namespaces.iter().any(|n| {
            n["type"] == kind
                && n["path"]
                    .as_str()
                    .is_none_or(|p| !p.starts_with("/proc/1/ns/"))
        })
    };
    meta.host_pid = shares_host("pid");
    meta.host_network = shares_host("network");
    meta.privileged = config["process"]["capabilities"]["bounding"]
        .as_array()
        .is_some_and(|caps| caps.iter().any(|c| c == "CAP_SYS_ADMIN"));
    meta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_init_is_the_runtimes_setup() {
        assert!(is_runtime_setup(&[b"runc", b"init"]));
        assert!(is_runtime_setup(&[b"/usr/sbin/runc", b"init"]));
        assert!(!is_runtime_setup(&[b"sh", b"-c", b"runc init"]));
        assert!(!is_runtime_setup(&[b"/bin/init"]));
        assert!(!is_runtime_setup(&[b"runc", b"run", b"init"]));
    }

    #[test]
    fn cri_annotations_mounts_and_namespaces() {
        let config = serde_json::json!({
            "annotations": {
                "io.kubernetes.cri.container-name": "app",
                "io.kubernetes.cri.sandbox-name": "web-1",
                "io.kubernetes.cri.sandbox-namespace": "prod",
                "io.kubernetes.cri.image-name": "registry.local/app:1.2"
            },
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/host", "type": "bind", "source": "/", "options": ["rbind", "rw"]},
                {"destination": "/var/run/docker.sock", "source": "/var/run/docker.sock", "options": ["bind", "ro"]}
            ],
            "linux": {"namespaces": [{"type": "mount"}, {"type": "network", "path": "/proc/1/ns/net"}]},
            "process": {"capabilities": {"bounding": ["CAP_CHOWN", "CAP_SYS_ADMIN"]}}
        });
        let m = from_oci_config(&config);
        assert_eq!(
            (
                m.name.as_deref(),
                m.pod_name.as_deref(),
                m.pod_namespace.as_deref()
            ),
            (Some("app"), Some("web-1"), Some("prod"))
        );
        assert_eq!(m.image.as_deref(), Some("registry.local/app:1.2"));
        assert_eq!(m.bind_mounts.len(), 2);
        assert!(!m.bind_mounts[0].read_only && m.bind_mounts[1].read_only);
        assert!(m.runtime_socket && m.privileged && m.host_pid && m.host_network);
    }

    #[test]
    fn state_dirs_from_runtime_command_lines() {
        let args = |v: &[&'static str]| v.iter().map(|a| a.as_bytes()).collect::<Vec<_>>();
        let runc = args(&[
            "/usr/sbin/runc",
            "--root",
            "/run/x/moby",
            "--log",
            "l",
            "start",
            "id",
        ]);
        assert_eq!(
            state_dir_flags(&runc),
            vec![(StateKind::RuncRoot, "/run/x/moby".into())]
        );
        let dockerd = args(&[
            "dockerd",
            "--data-root=/srv/docker",
            "-H",
            "unix:///s",
            "-H",
            "tcp://0:2375",
        ]);
        assert_eq!(
            state_dir_flags(&dockerd),
            vec![
                (StateKind::DockerDataRoot, "/srv/docker".into()),
                (StateKind::DockerSocket, "/s".into())
            ]
        );
        assert!(state_dir_flags(&args(&["runc", "list"])).is_empty());
        assert!(state_dir_flags(&args(&["bash", "--root", "/x"])).is_empty());
    }

    #[test]
    fn isolated_container_has_no_flags() {
        let config = serde_json::json!({
            "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "mount"}]},
            "process": {"capabilities": {"bounding": ["CAP_CHOWN"]}}
        });
        assert_eq!(from_oci_config(&config), ContainerMeta::default());
    }

    #[test]
    fn names_and_images_from_containers_storage() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("overlay-containers")).unwrap();
        let list = serde_json::json!([
            {"id": "other", "names": ["x"], "metadata": "{}"},
            {"id": "abc", "names": ["web"], "metadata": "{\"image-name\":\"localhost/app:1\",\"name\":\"web\"}"}
        ]);
        fs::write(
            dir.path().join("overlay-containers/containers.json"),
            list.to_string(),
        )
        .unwrap();
        let root = dir.path().to_str().unwrap();
        assert_eq!(
            storage_names("abc", &[root]),
            Some(("web".into(), "localhost/app:1".into()))
        );
        assert_eq!(storage_names("missing", &[root]), None);
    }

    #[test]
    fn missing_and_corrupt_state_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let dirs = StateDirs {
            runc: vec![root.into()],
            docker: vec![],
            storage: vec![],
            docker_sockets: vec![],
        };
        assert!(matches!(lookup("abc", &dirs), Err(MetaError::NotFound(_))));
        fs::create_dir_all(dir.path().join("abc")).unwrap();
        fs::write(dir.path().join("abc/state.json"), b"{not json").unwrap();
        let err = lookup("abc", &dirs).unwrap_err().to_string();
        assert!(err.contains("state.json"), "{err}");
    }
}
