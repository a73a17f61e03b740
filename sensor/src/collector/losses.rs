//! Loss accounting: the kernel's per-CPU counters plus userspace decode
//! failures, turned into loss records whenever anything moved.
use std::collections::{BTreeMap, HashMap};

use sensor_common::{EVENT_KIND_SLOTS, EventKind, LossCounters};

use crate::event::{Kind, LossData};

/// Running totals, to report deltas.
#[derive(Default)]
pub struct LossTracker {
    last_per_cpu: Vec<LossCounters>,
    /// Per pid, the kernel's cumulative rate-limited count last seen.
    last_by_pid: HashMap<u32, u64>,
    last_evicted: u64,
    /// Rate-limited total (all CPUs and kinds) when the per-pid counts
    /// were last read, and whether it had moved then.
    limited_at_walk: u64,
    walk_again: bool,
    malformed_reported: u64,
    /// Records userspace rejected.
    pub malformed: u64,
    /// Everything lost since start.
    pub total: u64,
}

/// The name of the kind with kernel id `i`.
fn kind_name(i: usize) -> String {
    match EventKind::try_from(i as u32) {
        Ok(k) => Kind::of_kernel(k).name().into(),
        Err(n) => format!("kind_{n}"),
    }
}

impl LossTracker {
    /// Whether the kernel's per-pid rate-limited counts need reading with
    /// this snapshot: while the per-kind totals move, and once after (the
    /// kernel adds to the per-pid count just after the per-kind one). An
    /// idle sensor then does not walk a map of up to 1024 past flooders
    /// every second.
    pub fn wants_pid_walk(&mut self, per_cpu: &[LossCounters]) -> bool {
        let total: u64 = per_cpu.iter().flat_map(|c| c.rate_limited).sum();
        let moved = total != self.limited_at_walk;
        self.limited_at_walk = total;
        let walk = moved || self.walk_again;
        self.walk_again = moved;
        walk
    }

    /// Compares a fresh per-CPU snapshot, the per-process rate-limited
    /// totals (`None`: not read this time, see [`Self::wants_pid_walk`]) and
    /// the process table's eviction total with the last; returns the delta
    /// if anything was lost since.
    pub fn update(
        &mut self,
        per_cpu: &[LossCounters],
        limited_by_pid: Option<&[(u32, u64)]>,
        evicted_total: u64,
    ) -> Option<LossData> {
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
                let limited = now.rate_limited[k].saturating_sub(before.rate_limited[k]);
                if full > 0 {
                    *d.ring_full.entry(kind_name(k)).or_default() += full;
                }
                if err > 0 {
                    *d.kernel_error.entry(kind_name(k)).or_default() += err;
                }
                if limited > 0 {
                    *d.rate_limited.entry(kind_name(k)).or_default() += limited;
                }
                cpu_full += full;
                moved += full + err + limited;
            }
            if cpu_full > 0 {
                d.ring_full_by_cpu.insert(cpu as u32, cpu_full);
            }
        }
        self.last_per_cpu = per_cpu.to_vec();
        // The kernel's map is LRU: a pid missing from it is forgotten here.
        if let Some(limited_by_pid) = limited_by_pid {
            let mut seen = HashMap::with_capacity(limited_by_pid.len());
            for &(pid, total) in limited_by_pid {
                let new = total.saturating_sub(self.last_by_pid.get(&pid).copied().unwrap_or(0));
                if new > 0 {
                    d.rate_limited_by_pid.insert(pid, new);
                }
                seen.insert(pid, total);
            }
            self.last_by_pid = seen;
        }
        d.malformed = self.malformed - self.malformed_reported;
        self.malformed_reported = self.malformed;
        moved += d.malformed;
        self.total += moved;
        d.total_since_start = self.total;
        (moved > 0 || d.process_table_evicted > 0 || !d.rate_limited_by_pid.is_empty()).then_some(d)
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
        assert!(t.update(&[c, c], None, 0).is_none());
        c.ring_full[EventKind::Open as usize] = 5;
        let d = t.update(&[LossCounters::default(), c], None, 0).unwrap();
        assert_eq!(d.ring_full["open"], 5);
        assert_eq!(d.ring_full_by_cpu[&1], 5);
        assert!(t.update(&[LossCounters::default(), c], None, 0).is_none());
        t.malformed += 2;
        let d = t.update(&[LossCounters::default(), c], None, 0).unwrap();
        assert_eq!((d.malformed, d.total_since_start), (2, 7));
        let d = t.update(&[LossCounters::default(), c], None, 3).unwrap();
        assert_eq!((d.process_table_evicted, d.total_since_start), (3, 7));
        // Rate-limited records: exact per kind, by pid as the kernel's
        // cumulative per-process counts move.
        c.rate_limited[EventKind::Connect as usize] = 4;
        let d = t
            .update(&[LossCounters::default(), c], Some(&[(42, 4)]), 3)
            .unwrap();
        assert_eq!(d.rate_limited["connect"], 4);
        assert_eq!(d.rate_limited_by_pid[&42], 4);
        assert_eq!(d.total_since_start, 11);
        c.rate_limited[EventKind::Connect as usize] = 10;
        let d = t
            .update(&[LossCounters::default(), c], Some(&[(42, 7), (43, 3)]), 3)
            .unwrap();
        assert_eq!(d.rate_limited["connect"], 6);
        assert_eq!(
            (d.rate_limited_by_pid[&42], d.rate_limited_by_pid[&43]),
            (3, 3)
        );
        assert!(
            t.update(&[LossCounters::default(), c], Some(&[(42, 7)]), 3)
                .is_none()
        );
        // Not read: the last per-pid totals stand, so a later read reports
        // only what is new.
        assert!(t.update(&[LossCounters::default(), c], None, 3).is_none());
        c.rate_limited[EventKind::Open as usize] = 1;
        let d = t
            .update(&[LossCounters::default(), c], Some(&[(42, 8)]), 3)
            .unwrap();
        assert_eq!(d.rate_limited_by_pid[&42], 1);
    }

    #[test]
    fn per_pid_counts_are_read_while_totals_move_and_once_after() {
        let mut t = LossTracker::default();
        let mut c = LossCounters::default();
        assert!(!t.wants_pid_walk(&[c]), "nothing limited yet");
        c.rate_limited[EventKind::Open as usize] = 3;
        assert!(t.wants_pid_walk(&[c]));
        c.rate_limited[EventKind::Connect as usize] = 1;
        assert!(t.wants_pid_walk(&[c]));
        assert!(t.wants_pid_walk(&[c]), "once more after the totals stop");
        assert!(!t.wants_pid_walk(&[c]));
        assert!(!t.wants_pid_walk(&[c]));
        assert!(
            !t.wants_pid_walk(&[LossCounters::default(), c]),
            "one total, any CPUs"
        );
    }
}
