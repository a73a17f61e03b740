//! Which container a cgroup path belongs to, from the naming conventions of
//! the runtimes and kubelet cgroup drivers. Pure string work: the paths come
//! from the kernel (cgroup_mkdir) or /proc/<pid>/cgroup.
//!
//! Recognised (innermost match wins, so nested containers resolve to the
//! inner one):
//! - Docker: `/docker/<id>`, `docker-<id>.scope`
//! - containerd/CRI: `cri-containerd-<id>.scope`
//! - CRI-O: `crio-<id>.scope`, `/crio-<id>`
//! - podman: `libpod-<id>.scope`, `/libpod_parent/libpod-<id>`
//! - Kubernetes, cgroupfs driver: `/kubepods[/<qos>]/pod<uid>/<id>`
//! - Kubernetes, systemd driver: `kubepods-<qos>-pod<uid_with_underscores>.slice/<runtime>-<id>.scope`
//!
//! `*-conmon-<id>` scopes are podman/CRI-O monitors, not the container.
use serde::{Deserialize, Serialize};

/// A container as its cgroup path names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupContainer {
    /// Container id (64 hex for every runtime here).
    pub id: String,
    /// `docker`, `containerd`, `cri-o`, `podman`, or `cri` when only the
    /// kubepods layout says it is a Kubernetes container.
    pub runtime: String,
    /// Kubernetes pod uid, when the path has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `<prefix><id>.scope` or `<prefix><id>` → id.
fn strip_id<'a>(segment: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = segment.strip_prefix(prefix)?;
    let id = rest.strip_suffix(".scope").unwrap_or(rest);
    is_container_id(id).then_some(id)
}

/// Pod uid from a kubepods segment (`pod<uid>` or `kubepods-<qos>-pod<uid>.slice`).
fn pod_uid(segment: &str) -> Option<String> {
    let s = segment.strip_suffix(".slice").unwrap_or(segment);
    let uid = s.rsplit_once("pod").map(|(_, u)| u)?;
    // systemd escapes '-' as '_' in slice names.
    let uid = uid.replace('_', "-");
    (uid.len() == 36 && uid.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')).then_some(uid)
}

/// The innermost container a cgroup path places a process in, if any.
pub fn parse(path: &str) -> Option<CgroupContainer> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let in_kubepods = segments.iter().any(|s| s.starts_with("kubepods"));
    let mut found = None;
    let mut pod = None;
    for (i, seg) in segments.iter().enumerate() {
        if in_kubepods
            && seg.contains("pod")
            && let Some(uid) = pod_uid(seg)
        {
            pod = Some(uid);
            continue;
        }
        if seg.contains("-conmon-") {
            continue;
        }
        let hit = if let Some(id) = strip_id(seg, "docker-") {
            Some((id, "docker"))
        } else if let Some(id) = strip_id(seg, "cri-containerd-") {
            Some((id, "containerd"))
        } else if let Some(id) = strip_id(seg, "crio-") {
            Some((id, "cri-o"))
        } else if let Some(id) = strip_id(seg, "libpod-") {
            Some((id, "podman"))
        } else if i > 0 && segments[i - 1] == "docker" && is_container_id(seg) {
            Some((*seg, "docker"))
        } else if pod.is_some() && is_container_id(seg) {
            // cgroupfs driver: kubepods/<qos>/pod<uid>/<id>, runtime not named.
            Some((*seg, "cri"))
        } else {
            None
        };
        if let Some((id, runtime)) = hit {
            found = Some(CgroupContainer {
                id: id.to_owned(),
                runtime: runtime.to_owned(),
                pod_uid: pod.clone(),
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e8d2a1b0c9e7f6a5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a39";
    const ID2: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const POD: &str = "6f0a2d8e-1b4c-4e7a-9c3d-2b1a0f9e8d7c";

    fn c(runtime: &str, id: &str, pod: Option<&str>) -> Option<CgroupContainer> {
        Some(CgroupContainer {
            id: id.into(),
            runtime: runtime.into(),
            pod_uid: pod.map(Into::into),
        })
    }

    #[test]
    fn docker_both_drivers() {
        assert_eq!(parse(&format!("/docker/{ID}")), c("docker", ID, None));
        assert_eq!(
            parse(&format!("/system.slice/docker-{ID}.scope")),
            c("docker", ID, None)
        );
    }

    #[test]
    fn containerd_crio_podman() {
        assert_eq!(
            parse(&format!("/system.slice/cri-containerd-{ID}.scope")),
            c("containerd", ID, None)
        );
        assert_eq!(parse(&format!("/crio-{ID}")), c("cri-o", ID, None));
        assert_eq!(
            parse(&format!("/machine.slice/libpod-{ID}.scope")),
            c("podman", ID, None)
        );
        assert_eq!(
            parse(&format!("/libpod_parent/libpod-{ID}")),
            c("podman", ID, None)
        );
        assert_eq!(
            parse(&format!("/machine.slice/libpod-conmon-{ID}.scope")),
            None
        );
    }

    #[test]
    fn kubepods_systemd_driver_every_qos() {
        let u = POD.replace('-', "_");
        for qos in ["besteffort", "burstable"] {
            let p = format!(
                "/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{u}.slice/cri-containerd-{ID}.scope"
            );
            assert_eq!(parse(&p), c("containerd", ID, Some(POD)), "{p}");
        }
        let guaranteed = format!("/kubepods.slice/kubepods-pod{u}.slice/crio-{ID}.scope");
        assert_eq!(parse(&guaranteed), c("cri-o", ID, Some(POD)));
    }

    #[test]
    fn kubepods_cgroupfs_driver_every_qos() {
        for p in [
            format!("/kubepods/besteffort/pod{POD}/{ID}"),
            format!("/kubepods/burstable/pod{POD}/{ID}"),
            format!("/kubepods/pod{POD}/{ID}"),
        ] {
            assert_eq!(parse(&p), c("cri", ID, Some(POD)), "{p}");
        }
    }

    #[test]
    fn nested_resolves_to_the_innermost() {
        let p = format!("/system.slice/docker-{ID}.scope/docker/{ID2}");
        assert_eq!(parse(&p), c("docker", ID2, None));
    }

    #[test]
    fn host_and_garbage_paths_are_not_containers() {
        for p in [
            "/",
            "",
            "/user.slice/user-0.slice/session-1.scope",
            "/docker/notanid",
            "/docker-xyz.scope",
            "//\n\0",
            "/kubepods/besteffort/podnot-a-uid/abc",
        ] {
            assert_eq!(parse(p), None, "{p:?}");
        }
    }
}
