//! Egress byte accounting: the kernel counts what each cgroup sends to each
//! destination in a map; userspace reads it on a timer and reports the
//! deltas. Counting in a map instead of a record per packet keeps the cost
//! per packet to one hash update.

/// Most (cgroup, destination) pairs tracked at once; least recently used
/// pairs are evicted (userspace then sees the counter start over).
pub const EGRESS_ENTRIES: u32 = 16384;

/// Program name of the cgroup_skb egress program.
pub const EGRESS_PROGRAM: &str = "cgroup_skb_egress";

/// A destination of one cgroup.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EgressKey {
    /// cgroup2 id of the sending socket.
    pub cgroup_id: u64,
    /// Destination: IPv4 in the first 4 bytes, or IPv6; network order.
    pub addr: [u8; 16],
    /// Destination port, host order (0 for protocols without ports).
    pub port: u16,
    /// 4 or 6.
    pub ip_version: u8,
    /// IP protocol (6 TCP, 17 UDP, ...).
    pub protocol: u8,
    /// Keeps the size a multiple of 8.
    pub _pad: u32,
}

/// Bytes and packets sent, per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EgressCount {
    /// IP packet bytes (TCP: segments with payload only).
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
}

const _: () = assert!(core::mem::size_of::<EgressKey>() == 32);

#[cfg(all(feature = "user", target_os = "linux"))]
// SAFETY: repr(C) integers and a byte array only; the padding is the `_pad`
// field (size asserted above), so every byte is initialised and any bit
// pattern is a valid key.
unsafe impl aya::Pod for EgressKey {}
#[cfg(all(feature = "user", target_os = "linux"))]
// SAFETY: repr(C) of two u64: no padding, any bit pattern is a valid value.
unsafe impl aya::Pod for EgressCount {}
