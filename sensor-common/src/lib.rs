//! The kernel/user contract: every record the eBPF programs write to the ring
//! buffer, the kernel offsets userspace injects before load, and the map names.
//!
//! Records are `#[repr(C)]` with explicit padding so both sides agree on the
//! layout byte for byte; `layout` holds compile-time size asserts. A record is
//! a fixed part followed by a variable tail whose lengths the fixed part gives,
//! so small events stay small on the ring.
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

pub mod egress;
pub mod event;
pub mod filter;
pub mod offsets;

pub use egress::*;
pub use event::*;
pub use filter::*;
pub use offsets::*;

/// Bumped whenever a record layout changes; userspace refuses a mismatch.
pub const ABI_VERSION: u32 = 1;

/// Map names, shared so neither side spells them twice.
pub mod maps {
    /// The ring buffer carrying every event record.
    pub const EVENTS: &str = "EVENTS";
    /// Per-CPU array of [`crate::LossCounters`]: records the kernel could not emit.
    pub const LOSSES: &str = "LOSSES";
    /// Per-CPU scratch space where variable-length records are assembled.
    pub const SCRATCH: &str = "SCRATCH";
    /// LRU per-CPU hash of [`crate::EgressKey`] -> [`crate::EgressCount`].
    pub const EGRESS: &str = "EGRESS";
    /// LRU hash of thread id (`pid_tgid`) -> [`crate::ConnectStash`]: the
    /// LSM tier's hand-over from `socket_connect` to the syscall exit.
    pub const CONNECT_STASH: &str = "CONNECT_STASH";
    /// One-entry array of [`crate::OpenInterest`]: which opens reach the
    /// ring, rewritten when the rules reload.
    pub const OPEN_INTEREST: &str = "OPEN_INTEREST";
    /// Hash of component fingerprints (`name_fingerprint`) the open filter
    /// wants.
    pub const OPEN_NAMES: &str = "OPEN_NAMES";
    /// One-entry array of [`crate::connect_mode`] bits: which connects reach
    /// the ring, rewritten when the rules reload.
    pub const CONNECT_INTEREST: &str = "CONNECT_INTEREST";
    /// Per-CPU array of u64 indexed by [`crate::EventKind`] id: records
    /// dropped because no loaded rule could match them (`OPEN_INTEREST`,
    /// `CONNECT_INTEREST`).
    pub const FILTERED: &str = "FILTERED";
    /// LRU hash of pid -> [`crate::RateWindow`]: the rate limit's state.
    pub const RATE: &str = "RATE";
    /// LRU hash of pid -> u64: records suppressed by the rate limit, per
    /// process, for the loss records.
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
}

/// Names of the read-only globals userspace overrides before load.
pub mod globals {
    /// [`crate::KernelOffsets`] computed from the running kernel's BTF.
    pub const OFFSETS: &str = "OFFSETS";
    /// [`crate::FilterConfig`]: what the programs emit.
    pub const FILTER: &str = "FILTER";
}
