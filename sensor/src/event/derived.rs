//! Records the sensor derives rather than the kernel reports per event:
//! egress byte counts, container lifecycle, loss accounting.
use std::{net::IpAddr, sync::Arc};

use serde::{Deserialize, Serialize};

use super::{Attributed, CgroupRef, is_zero};
use crate::container::ContainerRef;

/// `egress` fields: kernel byte accounting per (cgroup, destination), read
/// on a timer; only destinations that received data are reported.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EgressRecord {
    /// The sending sockets' cgroup (cgroup2 id).
    pub cgroup: CgroupRef,
    /// Its container (`id: "host"` for the host).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ContainerRef::cached"
    )]
    pub container: Option<Arc<ContainerRef>>,
    /// Details under `"egress"`.
    pub egress: EgressData,
}

/// One destination's traffic in one interval.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EgressData {
    /// `inet` or `inet6`.
    pub family: String,
    /// `tcp`, `udp`, ... or `proto_<n>`.
    pub protocol: String,
    /// Destination address.
    pub address: IpAddr,
    /// Destination port (TCP/UDP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// IP bytes sent in the interval.
    pub bytes: u64,
    /// Packets sent in the interval.
    pub packets: u64,
    /// Length of the interval.
    pub interval_ms: u64,
}

/// `container_start` / `container_stop` fields.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerLifecycle {
    /// The container, with its metadata.
    pub container: Arc<ContainerRef>,
    /// For a start: the process whose exec revealed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// Losses since the previous loss record. Never silent: a record is written
/// whenever any counter moved.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Loss {
    /// Details under `"loss"`.
    pub loss: LossData,
}

/// Loss counts (deltas) and running totals.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LossData {
    /// Records dropped because the ring was full, by kind.
    pub ring_full: std::collections::BTreeMap<String, u64>,
    /// Records the kernel could not build, by kind.
    pub kernel_error: std::collections::BTreeMap<String, u64>,
    /// Ring-full drops by CPU index (only CPUs that dropped).
    #[serde(deserialize_with = "number_keyed")]
    pub ring_full_by_cpu: std::collections::BTreeMap<u32, u64>,
    /// Records over their process's rate limit (`--rate-limit`), by kind.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub rate_limited: std::collections::BTreeMap<String, u64>,
    /// The same by process id (the processes that flooded; attributed on
    /// a best-effort basis, the per-kind counts are exact).
    #[serde(
        default,
        deserialize_with = "number_keyed",
        skip_serializing_if = "std::collections::BTreeMap::is_empty"
    )]
    pub rate_limited_by_pid: std::collections::BTreeMap<u32, u64>,
    /// Records userspace could not decode (counted and skipped).
    pub malformed: u64,
    /// Everything lost since start.
    pub total_since_start: u64,
    /// Process table entries evicted because the table was full (their
    /// events lose ancestry, not existence).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub process_table_evicted: u64,
    /// Polling: new processes whose parent was never seen, so at least
    /// one short-lived process (the parent) started and ended between polls.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub poll_missed_parents: u64,
    /// Polling: file notification errors (e.g. queue overflow): file
    /// events lost.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub file_notify_errors: u64,
    /// Records a file or stdout output could not write (a full disk, a
    /// closed pipe), by reason.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub output_dropped: std::collections::BTreeMap<String, u64>,
}

impl LossData {
    /// Adds what the outputs dropped (`Sink::take_dropped`) to `loss`, or
    /// makes a loss record of it; `total` is everything lost since start.
    pub fn with_output_dropped(
        loss: Option<Self>,
        dropped: std::collections::BTreeMap<&'static str, u64>,
        total: &mut u64,
    ) -> Option<Self> {
        if dropped.is_empty() {
            return loss;
        }
        let mut d = loss.unwrap_or_default();
        for (reason, n) in dropped {
            *total += n;
            d.output_dropped.insert(reason.to_owned(), n);
        }
        d.total_since_start = *total;
        Some(d)
    }
}

/// JSON object keys are strings; inside the internally tagged [`Body`]
/// serde hands them over as such, and a `u32` key would refuse them.
fn number_keyed<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<u32, u64>, D::Error> {
    let by_text = std::collections::BTreeMap::<String, u64>::deserialize(d)?;
    by_text
        .into_iter()
        .map(|(key, n)| {
            key.parse()
                .map(|key| (key, n))
                .map_err(|_| serde::de::Error::custom(format!("key {key:?} is not a number")))
        })
        .collect()
}

impl Attributed for EgressRecord {
    fn container(&self) -> Option<&Arc<ContainerRef>> {
        self.container.as_ref()
    }
}

impl Attributed for ContainerLifecycle {
    fn container(&self) -> Option<&Arc<ContainerRef>> {
        Some(&self.container)
    }
}

/// Loss is the sensor's own: no process, no container.
impl Attributed for Loss {}

/// One of the sensor's own hooks was found detached by something else
/// (`loader::watch`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HookLost {
    /// Details under `"hook_lost"`.
    pub hook_lost: HookLostData,
}

/// Which hook, and whether it is back.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HookLostData {
    /// The program and where it was attached (`cgroup_skb/egress on
    /// /sys/fs/cgroup`).
    pub hook: String,
    /// Attached again: what happened in between went uncounted.
    pub reattached: bool,
    /// Why attaching again failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The sensor's own: no process, no container.
impl Attributed for HookLost {}
