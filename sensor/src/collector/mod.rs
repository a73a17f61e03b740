//! Event sources. `ebpf` drains the kernel ring buffer; `poll` is the
//! fallback for hosts where the programs cannot load, with the same schema
//! and rules. Both hand every record to [`crate::pipeline`].
#[cfg(target_os = "linux")]
pub mod ebpf;
#[cfg(target_os = "linux")]
pub mod egress;
#[cfg(target_os = "linux")]
pub mod losses;
pub mod poll;

/// Counters for the run, returned at shutdown.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunStats {
    /// Records written.
    pub events: u64,
    /// Records lost (kernel and userspace).
    pub lost: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Events the kernel dropped because no rule could match them.
    pub filtered: u64,
}
