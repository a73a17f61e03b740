//! Loss accounting: the kernel's per-CPU counters plus userspace decode
//! failures, turned into loss records whenever anything moved.
use std::collections::BTreeMap;

use sensor_common::{EVENT_KIND_SLOTS, EventKind, LossCounters};

use crate::event::LossData;

/// Running totals, to report deltas.
#[derive(Default)]
pub struct LossTracker {
    last_per_cpu: Vec<LossCounters>,
    last_evicted: u64,
    malformed_reported: u64,
    /// Records userspace rejected.
    pub malformed: u64,
    /// Everything lost since start.
    pub total: u64,
}

fn kind_name(i: usize) -> String {
    match EventKind::try_from(i as u32) {
        Ok(EventKind::Exec) => "exec".into(),
        Ok(EventKind::Fork) => "fork".into(),
        Ok(EventKind::Exit) => "exit".into(),
        Ok(EventKind::Open) => "open".into(),
        Ok(EventKind::Connect) => "connect".into(),
        Ok(EventKind::CgroupMkdir) => "cgroup_mkdir".into(),
        Ok(EventKind::CgroupRmdir) => "cgroup_rmdir".into(),
        Err(n) => format!("kind_{n}"),
    }
}

impl LossTracker {
    /// Compares a fresh per-CPU snapshot (and the process table's eviction
    /// total) with the last; returns the delta if anything was lost since.
    pub fn update(&mut self, per_cpu: &[LossCounters], evicted_total: u64) -> Option<LossData> {
        let mut d = LossData {
            process_table_evicted: evicted_total.saturating_sub(self.last_evicted),
            ..LossData::default()
        };
        self.last_evicted = evicted_total;
        let mut moved = 0u64;
        for (cpu, now) in per_cpu.iter().enumerate() {
            let before = self.last_per_cpu.get(cpu).copied().unwrap_or_default();
            let mut cpu_full = 0;
            for k in 0..EVENT_KIND_SLOTS {
                let full = now.ring_full[k].saturating_sub(before.ring_full[k]);
                let err = now.read_error[k].saturating_sub(before.read_error[k]);
                if full > 0 {
                    *d.ring_full.entry(kind_name(k)).or_default() += full;
                }
                if err > 0 {
                    *d.kernel_error.entry(kind_name(k)).or_default() += err;
                }
                cpu_full += full;
                moved += full + err;
            }
            if cpu_full > 0 {
                d.ring_full_by_cpu.insert(cpu as u32, cpu_full);
            }
        }
        self.last_per_cpu = per_cpu.to_vec();
        d.malformed = self.malformed - self.malformed_reported;
        self.malformed_reported = self.malformed;
        moved += d.malformed;
        self.total += moved;
        d.total_since_start = self.total;
        (moved > 0 || d.process_table_evicted > 0).then_some(d)
    }
}

/// Sums a map of counts.
pub fn sum(m: &BTreeMap<String, u64>) -> u64 {
    m.values().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_deltas_only_when_something_moved() {
        let mut t = LossTracker::default();
        let mut c = LossCounters::default();
        assert!(t.update(&[c, c], 0).is_none());
        c.ring_full[EventKind::Open as usize] = 5;
        let d = t.update(&[LossCounters::default(), c], 0).unwrap();
        assert_eq!(d.ring_full["open"], 5);
        assert_eq!(d.ring_full_by_cpu[&1], 5);
        assert!(t.update(&[LossCounters::default(), c], 0).is_none());
        t.malformed += 2;
        let d = t.update(&[LossCounters::default(), c], 0).unwrap();
        assert_eq!((d.malformed, d.total_since_start), (2, 7));
        let d = t.update(&[LossCounters::default(), c], 3).unwrap();
        assert_eq!((d.process_table_evicted, d.total_since_start), (3, 7));
    }
}
