//! Reads the kernel's egress byte counters on a timer and turns what changed
//! into `egress` records: bytes and packets per (cgroup, destination) since
//! the previous read.
use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Instant,
};

use aya::maps::{MapData, PerCpuHashMap};
use sensor_common::{EgressCount, EgressKey};

use crate::{
    decode::protocol_name,
    event::{CgroupRef, EgressData, EgressRecord},
};

/// The EGRESS map and the totals seen at the previous read.
pub struct EgressReader {
    map: PerCpuHashMap<MapData, EgressKey, EgressCount>,
    last: HashMap<EgressKey, EgressCount>,
    last_read: Instant,
}

impl EgressReader {
    /// Wraps the map taken from the loaded object.
    pub fn new(map: PerCpuHashMap<MapData, EgressKey, EgressCount>) -> Self {
        Self {
            map,
            last: HashMap::new(),
            last_read: Instant::now(),
        }
    }

    /// Destinations that received data since the last call (container not
    /// yet attributed). Pairs the kernel evicted start over from zero.
    pub fn read(&mut self) -> Vec<EgressRecord> {
        let now = Instant::now();
        let interval_ms = now.duration_since(self.last_read).as_millis() as u64;
        self.last_read = now;
        let mut seen = HashMap::with_capacity(self.last.len());
        let mut out = Vec::new();
        for entry in self.map.iter() {
            let Ok((key, per_cpu)) = entry else {
                continue; // evicted between listing and reading
            };
            let total = per_cpu
                .iter()
                .fold(EgressCount::default(), |a, c| EgressCount {
                    bytes: a.bytes + c.bytes,
                    packets: a.packets + c.packets,
                });
            let before = self
                .last
                .get(&key)
                .filter(|b| b.bytes <= total.bytes)
                .copied()
                .unwrap_or_default();
            seen.insert(key, total);
            let bytes = total.bytes - before.bytes;
            if bytes == 0 {
                continue;
            }
            out.push(record(
                &key,
                bytes,
                total.packets.saturating_sub(before.packets),
                interval_ms,
            ));
        }
        self.last = seen;
        out
    }
}

fn record(key: &EgressKey, bytes: u64, packets: u64, interval_ms: u64) -> EgressRecord {
    let (family, address) = if key.ip_version == 4 {
        let a = Ipv4Addr::new(key.addr[0], key.addr[1], key.addr[2], key.addr[3]);
        ("inet", IpAddr::V4(a))
    } else {
        ("inet6", IpAddr::V6(Ipv6Addr::from(key.addr)))
    };
    let has_port = matches!(key.protocol as i32, libc::IPPROTO_TCP | libc::IPPROTO_UDP);
    EgressRecord {
        cgroup: CgroupRef {
            id: key.cgroup_id,
            v1_id: None,
        },
        container: None,
        egress: EgressData {
            family: family.to_owned(),
            protocol: protocol_name(key.protocol.into()),
            address,
            port: has_port.then_some(key.port),
            bytes,
            packets,
            interval_ms,
        },
    }
}
