//! Kernel timestamps are `CLOCK_BOOTTIME` nanoseconds; events carry wall
//! time too. The offset is taken once at start: boottime and realtime advance
//! together except across a settimeofday, which a long-running sensor
//! corrects by calling [`BootClock::new`] again. Other systems have no
//! kernel timestamps; there boot time is wall time minus the boot instant.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Converts boot-relative nanoseconds to wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    /// realtime - boottime, in ns.
    offset_ns: i128,
}

impl BootClock {
    /// Samples both clocks now.
    pub fn new() -> Self {
        let boot = Self::now_boot_ns() as i128;
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos() as i128;
        Self {
            offset_ns: real - boot,
        }
    }

    /// Wall-clock time of a boot timestamp.
    pub fn wall(&self, boot_ns: u64) -> SystemTime {
        let unix = (boot_ns as i128 + self.offset_ns).max(0) as u128;
        UNIX_EPOCH + Duration::from_nanos(unix as u64)
    }

    /// A boot timestamp as RFC 3339 UTC with nanoseconds. Every record
    /// carries one and most fall in the same second as the one before, so
    /// the calendar part is formatted once per second (per thread).
    pub fn rfc3339(&self, boot_ns: u64) -> String {
        thread_local! {
            /// The last second formatted, and its text up to the `.`.
            static SECOND: std::cell::RefCell<(u64, String)> =
                const { std::cell::RefCell::new((u64::MAX, String::new())) };
        }
        let since_epoch = self
            .wall(boot_ns)
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let (secs, nanos) = (since_epoch.as_secs(), since_epoch.subsec_nanos());
        SECOND.with_borrow_mut(|(second, prefix)| {
            if *second != secs {
                let whole = UNIX_EPOCH + Duration::from_secs(secs);
                let text = humantime::format_rfc3339_seconds(whole).to_string();
                // "YYYY-MM-DDTHH:MM:SSZ" without its "Z".
                *prefix = text[..text.len() - 1].to_owned();
                *second = secs;
            }
            // Digits by hand: `format!` costs more than the rest.
            let mut digits = *b".000000000Z";
            let mut n = nanos;
            for d in digits[1..10].iter_mut().rev() {
                *d = b'0' + (n % 10) as u8;
                n /= 10;
            }
            let mut out = String::with_capacity(prefix.len() + digits.len());
            out.push_str(prefix);
            out.push_str(std::str::from_utf8(&digits).expect("ASCII"));
            out
        })
    }

    /// Current boot time in ns.
    #[cfg(target_os = "linux")]
    pub fn now_boot_ns() -> u64 {
        let t =
            nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).expect("CLOCK_BOOTTIME");
        t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
    }

    /// Current boot time in ns, from the boot instant the system reports
    /// (in seconds), read once: Windows derives it from the uptime, so it
    /// can move by a second between reads.
    #[cfg(not(target_os = "linux"))]
    pub fn now_boot_ns() -> u64 {
        static BOOTED: std::sync::OnceLock<SystemTime> = std::sync::OnceLock::new();
        let booted = *BOOTED.get_or_init(|| {
            // Unknown: count from the epoch; wall times stay right.
            UNIX_EPOCH + Duration::from_secs(sysinfo::System::boot_time().unwrap_or(0))
        });
        SystemTime::now()
            .duration_since(booted)
            .unwrap_or_default()
            .as_nanos() as u64
    }
}

impl Default for BootClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_the_calendar_across_seconds_and_days() {
        let clock = BootClock::new();
        let start = BootClock::now_boot_ns();
        // Same second twice, the next second, a day later, and back.
        for boot_ns in [
            start,
            start + 1,
            start + 999_999_999,
            start + 1_000_000_000,
            start + 86_400_000_000_000 + 7,
            start,
        ] {
            assert_eq!(
                clock.rfc3339(boot_ns),
                humantime::format_rfc3339_nanos(clock.wall(boot_ns)).to_string()
            );
        }
    }
}
