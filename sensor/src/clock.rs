//! Kernel timestamps are `CLOCK_BOOTTIME` nanoseconds; events carry wall
//! time too. The offset is taken once at start: boottime and realtime advance
//! together except across a settimeofday, which a long-running sensor
//! corrects by calling [`BootClock::new`] again.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::time::{ClockId, clock_gettime};

/// Converts boot-relative nanoseconds to wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    /// realtime - boottime, in ns.
    offset_ns: i128,
}

impl BootClock {
    /// Samples both clocks now.
    pub fn new() -> Self {
        let ns = |id| {
            let t = clock_gettime(id).expect("clock_gettime cannot fail for these clocks");
            t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128
        };
        let boot = ns(ClockId::CLOCK_BOOTTIME);
        let real = ns(ClockId::CLOCK_REALTIME);
        Self {
            offset_ns: real - boot,
        }
    }

    /// Wall-clock time of a boot timestamp.
    pub fn wall(&self, boot_ns: u64) -> SystemTime {
        let unix = (boot_ns as i128 + self.offset_ns).max(0) as u128;
        UNIX_EPOCH + Duration::from_nanos(unix as u64)
    }

    /// Current boot time in ns.
    pub fn now_boot_ns() -> u64 {
        let t = clock_gettime(ClockId::CLOCK_BOOTTIME).expect("CLOCK_BOOTTIME");
        t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
    }
}

impl Default for BootClock {
    fn default() -> Self {
        Self::new()
    }
}
