//! What the kernel emits. Filled from the CLI/config before load so the
//! verifier sees constants and dead branches cost nothing.

/// Hook families the user can switch on and off.
pub mod hook_bits {
    /// exec, plus fork and exit for the process table.
    pub const EXEC: u32 = 1 << 0;
    /// open, openat, openat2, creat.
    pub const OPEN: u32 = 1 << 1;
    /// connect.
    pub const CONNECT: u32 = 1 << 2;
    /// cgroup mkdir/rmdir.
    pub const CGROUP: u32 = 1 << 3;
    /// Bytes sent per (cgroup, destination), from a cgroup_skb egress program.
    pub const EGRESS: u32 = 1 << 4;
}

/// Read-only global injected at load.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FilterConfig {
    /// [`hook_bits`] enabled.
    pub hooks: u32,
    /// Pid of the sensor itself: its own activity is not reported (it would
    /// feed back on its output file).
    pub self_pid: u32,
    /// Bytes pending in the ring above which a record forces a wakeup;
    /// below it records are committed without one and userspace polls.
    pub wakeup_bytes: u64,
}

#[cfg(all(feature = "user", target_os = "linux"))]
// SAFETY: repr(C) integers only.
unsafe impl aya::Pod for FilterConfig {}
