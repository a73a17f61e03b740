//! Container attribution: cgroup ids -> paths -> containers. What events
//! carry is defined here for every platform; resolving it needs cgroups,
//! so the resolver is Linux-only.
#[cfg(target_os = "linux")]
mod attributor;
pub mod cgroup_path;
#[cfg(target_os = "linux")]
pub mod cgroups;
#[cfg(target_os = "linux")]
pub mod docker_api;
pub mod metadata;

use serde::{Deserialize, Serialize};

use crate::json_cache::JsonCache;

#[cfg(target_os = "linux")]
pub use self::attributor::Attributor;
use self::{cgroup_path::CgroupContainer, metadata::ContainerMeta};

/// Where an event happened, as written on every event under `container`.
/// Host processes read `{"id": "host", "runtime": "host"}` (Falco's
/// convention), so rules compare one field of one type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRef {
    /// Container id, `host`, or `unknown`.
    pub id: String,
    /// `docker`, `containerd`, `cri-o`, `podman`, `cri`, `host`, `unknown`.
    pub runtime: String,
    /// Kubernetes pod uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
    /// Why the container is `unknown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Name, image, pod, mounts, privileges from the runtime's state.
    #[serde(default, flatten, skip_serializing_if = "Option::is_none")]
    pub meta: Option<ContainerMeta>,
    /// Why `meta` is missing (the container's runtime state was not found
    /// or unreadable); the event is attributed all the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_error: Option<String>,
    /// Every event repeats its container: written through this cache
    /// ([`ContainerRef::cached`]).
    #[serde(skip)]
    json: JsonCache,
}

impl ContainerRef {
    /// The host.
    pub fn host() -> Self {
        Self {
            id: "host".into(),
            runtime: "host".into(),
            pod_uid: None,
            reason: None,
            meta: None,
            metadata_error: None,
            json: JsonCache::default(),
        }
    }

    /// Attribution failed, with why.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Self {
            id: "unknown".into(),
            runtime: "unknown".into(),
            pod_uid: None,
            reason: Some(reason.into()),
            meta: None,
            metadata_error: None,
            json: JsonCache::default(),
        }
    }

    /// True for the host.
    pub fn is_host(&self) -> bool {
        self.id == "host"
    }

    /// `serialize_with` for an event's container: its JSON built once
    /// per container. The container is behind an `Arc` when it is written,
    /// and never changed there.
    pub fn cached<S: serde::Serializer>(
        c: &Option<std::sync::Arc<Self>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        c.as_deref().map(|c| c.json.of(c)).serialize(s)
    }
}

impl From<CgroupContainer> for ContainerRef {
    fn from(c: CgroupContainer) -> Self {
        Self {
            id: c.id,
            runtime: c.runtime,
            pod_uid: c.pod_uid,
            reason: None,
            meta: None,
            metadata_error: None,
            json: JsonCache::default(),
        }
    }
}
