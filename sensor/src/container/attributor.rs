//! Resolves cgroup ids (from kernel events) and cgroup paths to containers
//! and their runtime metadata, caching both.
use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use super::{
    ContainerRef,
    cgroup_path::{self, CgroupContainer},
    cgroups::CgroupIndex,
    docker_api,
    metadata::{self, ContainerMeta, StateDirs, StateKind},
};

/// How long a failed metadata lookup is trusted before trying again (the
/// runtime may not have written its state yet).
const META_RETRY: Duration = Duration::from_secs(1);

/// How long a removed container's cgroup still resolves to it: records
/// read after the container is gone (ring lag, egress counters read on a
/// timer) keep their attribution. cgroup ids are kernfs ids, not reused.
const DEPARTED_GRACE: Duration = Duration::from_secs(60);

/// Deadline for each Docker API socket operation.
const DOCKER_API_TIMEOUT: Duration = Duration::from_secs(2);

/// Resolves cgroup ids to containers with their metadata, caching both.
pub struct Attributor {
    index: CgroupIndex,
    /// (is_v1, cgroup id) -> parsed path (None: not a container path).
    /// Shared, so a hit copies a pointer rather than the id's string.
    /// Both maps are read for every event: foldhash, not SipHash, which
    /// cost more than the rest of a hit on a 64-character id.
    by_cgroup: foldhash::HashMap<(bool, u64), Option<Arc<CgroupContainer>>>,
    /// Container id -> what events carry, and when metadata was last tried.
    by_id: foldhash::HashMap<String, (Arc<ContainerRef>, Option<Instant>)>,
    dirs: StateDirs,
    host: Arc<ContainerRef>,
    /// Docker API lookups run off the event path; started on first need.
    docker_api: Option<docker_api::Worker>,
    api_requested: HashSet<String>,
    /// (name, image) the API returned, merged into later lookups.
    api_names: HashMap<String, (String, String)>,
    /// Containers whose cgroup was removed, by (is_v1, cgroup id), with when.
    departed: HashMap<(bool, u64), (Arc<ContainerRef>, Instant)>,
    /// cgroup lookups answered from `by_cgroup`, and those that were not.
    cgroup_hits: u64,
    cgroup_misses: u64,
}

impl Attributor {
    /// Over a scanned index, reading runtime state from the standard roots.
    pub fn new(index: CgroupIndex) -> Self {
        Self::with_state_dirs(index, StateDirs::default())
    }

    /// Over a scanned index and custom runtime state directories.
    pub fn with_state_dirs(index: CgroupIndex, dirs: StateDirs) -> Self {
        Self {
            index,
            by_cgroup: HashMap::default(),
            by_id: HashMap::default(),
            dirs,
            host: Arc::new(ContainerRef::host()),
            docker_api: None,
            api_requested: HashSet::new(),
            api_names: HashMap::new(),
            departed: HashMap::new(),
            cgroup_hits: 0,
            cgroup_misses: 0,
        }
    }

    /// cgroup cache hits and misses so far.
    pub fn cache_stats(&self) -> (u64, u64) {
        (self.cgroup_hits, self.cgroup_misses)
    }

    /// Remembers a state directory a runtime's command line named, so
    /// runtimes with private roots (as in tests, or a second dockerd) are
    /// found too.
    pub fn learn_state_dir(&mut self, kind: StateKind, dir: String) {
        if self.dirs.learn(kind, dir.clone()) {
            tracing::debug!(?kind, %dir, "learned a container runtime state directory");
        }
    }

    /// The host.
    pub fn host(&self) -> Arc<ContainerRef> {
        self.host.clone()
    }

    /// The container of a task in cgroup2 `v2_id` and tracked-v1 `v1_id`
    /// (0 when unknown). cgroup2 is asked first; on hybrid hosts runtimes
    /// that only manage v1 controllers are found through the v1 id.
    /// `is_exec` retries a missing metadata lookup at once: the runtime's
    /// own setup runs in the container's cgroup before it writes its state,
    /// and the workload's first exec comes after.
    pub fn resolve(&mut self, v2_id: u64, v1_id: u64, is_exec: bool) -> Arc<ContainerRef> {
        self.apply_api_results();
        let v2 = self.parsed(false, v2_id, is_exec);
        let found = match v2 {
            Some(Some(c)) => Some(Some(c)),
            _ if v1_id != 0 => match self.parsed(true, v1_id, is_exec) {
                Some(Some(c)) => Some(Some(c)),
                other => v2.or(other),
            },
            _ => v2,
        };
        match found {
            Some(Some(c)) => self.container(&c, is_exec),
            Some(None) => self.host.clone(),
            None => self
                .departed
                .get(&(false, v2_id))
                .or_else(|| self.departed.get(&(true, v1_id)))
                .map(|(c, _)| c.clone())
                .unwrap_or_else(|| {
                    Arc::new(ContainerRef::unknown(format!(
                        "cgroup id {v2_id} not in the cgroup index"
                    )))
                }),
        }
    }

    /// The container a cgroup path names, with metadata.
    pub fn resolve_path(&mut self, path: &str) -> Option<Arc<ContainerRef>> {
        self.apply_api_results();
        cgroup_path::parse(path)
            .or_else(|| metadata::container_by_state(path, &self.dirs))
            .map(|c| self.container(&c, false))
    }

    /// The container a cgroup names, by path convention or, failing that,
    /// by runtime state. A "not a container" answer is cached, but an exec
    /// checks the state again: runc creates the cgroup before its state.
    fn parsed(&mut self, v1: bool, id: u64, is_exec: bool) -> Option<Option<Arc<CgroupContainer>>> {
        if let Some(c) = self.by_cgroup.get(&(v1, id))
            && (c.is_some() || !is_exec)
        {
            self.cgroup_hits += 1;
            return Some(c.clone());
        }
        self.cgroup_misses += 1;
        let path = if v1 {
            self.index.v1_path(id)
        } else {
            self.index.v2_path(id)
        }?;
        let c = cgroup_path::parse(path)
            .or_else(|| metadata::container_by_state(path, &self.dirs))
            .map(Arc::new);
        self.by_cgroup.insert((v1, id), c.clone());
        Some(c)
    }

    fn container(&mut self, c: &CgroupContainer, retry_now: bool) -> Arc<ContainerRef> {
        if let Some((known, retry_after)) = self.by_id.get(&c.id) {
            let fresh = match retry_after {
                None => true,
                Some(t) => !retry_now && Instant::now() < *t,
            };
            if fresh {
                return known.clone();
            }
        }
        let mut r = ContainerRef::from(c.clone());
        let mut retry = match metadata::lookup(&r.id, &self.dirs) {
            Ok(meta) => {
                r.meta = Some(meta);
                None
            }
            Err(e) => {
                r.metadata_error = Some(e.to_string());
                Some(Instant::now() + META_RETRY)
            }
        };
        if r.runtime == "docker" && r.meta.as_ref().and_then(|m| m.name.as_ref()).is_none() {
            if let Some((name, image)) = self.api_names.get(&r.id) {
                merge_names(&mut r, name, image);
                retry = None;
            } else {
                self.request_docker_api(&r.id);
            }
        }
        let r = Arc::new(r);
        self.by_id.insert(r.id.clone(), (r.clone(), retry));
        r
    }

    /// Asks the Docker API for a container's name and image, once, when
    /// Docker's on-disk record is not visible.
    fn request_docker_api(&mut self, id: &str) {
        if self.api_requested.contains(id) {
            return;
        }
        let Some(socket) = self
            .dirs
            .docker_sockets
            .iter()
            .find(|s| Path::new(s).exists())
        else {
            return;
        };
        self.api_requested.insert(id.to_owned());
        let worker = self
            .docker_api
            .get_or_insert_with(|| docker_api::Worker::start(DOCKER_API_TIMEOUT));
        worker.request(socket.into(), id.to_owned());
    }

    /// Folds finished Docker API lookups into the cached containers.
    fn apply_api_results(&mut self) {
        let Some(worker) = &self.docker_api else {
            return;
        };
        for (id, result) in worker.finished() {
            let Some((known, retry)) = self.by_id.get(&id) else {
                continue;
            };
            let mut updated = (**known).clone();
            match result {
                Ok((name, image)) => {
                    merge_names(&mut updated, &name, &image);
                    self.api_names.insert(id.clone(), (name, image));
                }
                Err(e) => {
                    tracing::debug!(error = %e, "docker API lookup failed");
                    updated.metadata_error.get_or_insert(e.to_string());
                }
            }
            let retry = *retry;
            self.by_id.insert(id, (Arc::new(updated), retry));
        }
    }

    /// A cgroup directory appeared.
    pub fn on_mkdir(&mut self, hierarchy_id: u32, id: u64, path: &str) {
        self.index.insert(hierarchy_id, id, path);
        self.by_cgroup.remove(&(hierarchy_id != 0, id));
    }

    /// A cgroup directory went away; its id can be reused. Returns the
    /// container it belonged to, if its path named one.
    pub fn on_rmdir(
        &mut self,
        hierarchy_id: u32,
        id: u64,
        path: &str,
    ) -> Option<Arc<ContainerRef>> {
        self.index.remove(hierarchy_id, id);
        // What the cgroup was resolved to while it lived (runtime state is
        // already gone by now for containers found through it).
        let key = (hierarchy_id != 0, id);
        let cached = self.by_cgroup.remove(&key).flatten();
        let c = cached.or_else(|| cgroup_path::parse(path).map(Arc::new))?;
        let r = self.by_id.remove(&c.id).map_or_else(
            || Arc::new(ContainerRef::from(CgroupContainer::clone(&c))),
            |(r, _)| r,
        );
        let now = Instant::now();
        self.departed
            .retain(|_, (_, at)| now.duration_since(*at) < DEPARTED_GRACE);
        self.departed.insert(key, (r.clone(), now));
        Some(r)
    }
}

/// Sets name and image from the Docker API where the state had none.
fn merge_names(r: &mut ContainerRef, name: &str, image: &str) {
    let meta = r.meta.get_or_insert_with(ContainerMeta::default);
    if meta.name.is_none() && !name.is_empty() {
        meta.name = Some(name.to_owned());
    }
    if meta.image.is_none() && !image.is_empty() {
        meta.image = Some(image.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_container_cgroup_still_resolves_for_late_records() {
        let id = "ab".repeat(32);
        let path = format!("/docker/{id}");
        let dirs = StateDirs {
            runc: vec!["/nonexistent".into()],
            docker: vec![],
            storage: vec![],
            docker_sockets: vec![],
        };
        let mut a = Attributor::with_state_dirs(CgroupIndex::default(), dirs);
        a.on_mkdir(0, 77, &path);
        assert_eq!(a.resolve(77, 0, false).id, id);
        let gone = a.on_rmdir(0, 77, &path).expect("a container cgroup");
        assert_eq!(gone.id, id);
        assert_eq!(a.resolve(77, 0, false).id, id, "late record after rmdir");
        assert_eq!(a.resolve(78, 0, false).id, "unknown");
    }
}
