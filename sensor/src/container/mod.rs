//! Container attribution: cgroup ids -> paths -> containers.
pub mod cgroup_path;
pub mod cgroups;

use std::{collections::HashMap, sync::Arc};

use serde::{Deserialize, Serialize};

use self::{cgroup_path::CgroupContainer, cgroups::CgroupIndex};

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
}

impl ContainerRef {
    /// The host.
    pub fn host() -> Self {
        Self {
            id: "host".into(),
            runtime: "host".into(),
            pod_uid: None,
            reason: None,
        }
    }

    /// Attribution failed, with why.
    pub fn unknown(reason: impl Into<String>) -> Self {
        Self {
            id: "unknown".into(),
            runtime: "unknown".into(),
            pod_uid: None,
            reason: Some(reason.into()),
        }
    }

    /// True for the host.
    pub fn is_host(&self) -> bool {
        self.id == "host"
    }
}

impl From<CgroupContainer> for ContainerRef {
    fn from(c: CgroupContainer) -> Self {
        Self {
            id: c.id,
            runtime: c.runtime,
            pod_uid: c.pod_uid,
            reason: None,
        }
    }
}

/// Resolves cgroup ids to containers, caching per id.
pub struct Attributor {
    index: CgroupIndex,
    cache: HashMap<(bool, u64), Arc<ContainerRef>>,
    host: Arc<ContainerRef>,
}

impl Attributor {
    /// Over a scanned index.
    pub fn new(index: CgroupIndex) -> Self {
        Self {
            index,
            cache: HashMap::new(),
            host: Arc::new(ContainerRef::host()),
        }
    }

    /// The container of a task in cgroup2 `v2_id` and tracked-v1 `v1_id`
    /// (0 when unknown). cgroup2 is asked first; on hybrid hosts runtimes
    /// that only manage v1 controllers are found through the v1 id.
    pub fn resolve(&mut self, v2_id: u64, v1_id: u64) -> Arc<ContainerRef> {
        let v2 = self.lookup(false, v2_id);
        if v2.as_ref().is_some_and(|c| !c.is_host()) || v1_id == 0 {
            return v2.unwrap_or_else(|| self.unresolved(v2_id));
        }
        match (self.lookup(true, v1_id), v2) {
            (Some(v1), _) => v1,
            (None, Some(v2)) => v2,
            (None, None) => self.unresolved(v2_id),
        }
    }

    fn lookup(&mut self, v1: bool, id: u64) -> Option<Arc<ContainerRef>> {
        if let Some(c) = self.cache.get(&(v1, id)) {
            return Some(c.clone());
        }
        let path = if v1 {
            self.index.v1_path(id)
        } else {
            self.index.v2_path(id)
        }?;
        let c = match cgroup_path::parse(path) {
            Some(c) => Arc::new(ContainerRef::from(c)),
            None => self.host.clone(),
        };
        self.cache.insert((v1, id), c.clone());
        Some(c)
    }

    fn unresolved(&self, id: u64) -> Arc<ContainerRef> {
        Arc::new(ContainerRef::unknown(format!(
            "cgroup id {id} not in the cgroup index"
        )))
    }

    /// A cgroup directory appeared.
    pub fn on_mkdir(&mut self, hierarchy_id: u32, id: u64, path: &str) {
        self.index.insert(hierarchy_id, id, path);
    }

    /// A cgroup directory went away; its id can be reused.
    pub fn on_rmdir(&mut self, hierarchy_id: u32, id: u64) {
        self.index.remove(hierarchy_id, id);
        self.cache.remove(&(hierarchy_id != 0, id));
    }
}
