//! Maps shared by all programs. Names are the contract in `sensor_common::maps`.
use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, LruPerCpuHashMap, PerCpuArray, RingBuf},
};
use sensor_common::{
    CONNECT_STASH_ENTRIES, ConnectStash, EGRESS_ENTRIES, EVENT_KIND_SLOTS, EgressCount, EgressKey,
    INTEREST_NAMES, LossCounters, OpenInterest, RATE_ENTRIES, RATE_LIMITED_ENTRIES, RateWindow,
    Scratch,
};

/// Default ring size; userspace resizes it before load. 8 MiB lost nothing
/// over 200k back-to-back opens in measurements on these machines.
const DEFAULT_RING_BYTES: u32 = 8 << 20;

#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

#[map(name = "LOSSES")]
pub static LOSSES: PerCpuArray<LossCounters> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "SCRATCH")]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "EGRESS")]
pub static EGRESS: LruPerCpuHashMap<EgressKey, EgressCount> =
    LruPerCpuHashMap::with_max_entries(EGRESS_ENTRIES, 0);

/// Filled by the LSM tier's socket_connect, consumed by the same thread's
/// syscall exit. Shared, not per-CPU: connect may sleep and migrate. LRU so
/// an entry whose exit never came (a connect path without sys_exit) ages out.
#[map(name = "CONNECT_STASH")]
pub static CONNECT_STASH: LruHashMap<u64, ConnectStash> =
    LruHashMap::with_max_entries(CONNECT_STASH_ENTRIES, 0);

/// Which opens reach the ring (derived from the rules). A map, not a
/// read-only global, so a rule reload can change it without reloading.
#[map(name = "OPEN_INTEREST")]
pub static OPEN_INTEREST: Array<OpenInterest> = Array::with_max_entries(1, 0);

/// Fingerprints of the path components the open filter wants.
#[map(name = "OPEN_NAMES")]
pub static OPEN_NAMES: HashMap<u64, u8> = HashMap::with_max_entries(INTEREST_NAMES as u32, 0);

/// Which connects reach the ring: `connect_mode` bits (from the rules).
#[map(name = "CONNECT_INTEREST")]
pub static CONNECT_INTEREST: Array<u32> = Array::with_max_entries(1, 0);

/// Records `OPEN_INTEREST` and `CONNECT_INTEREST` dropped, by kind, for the
/// metrics.
#[map(name = "FILTERED")]
pub static FILTERED: PerCpuArray<u64> = PerCpuArray::with_max_entries(EVENT_KIND_SLOTS as u32, 0);

/// Per process, the current second of the rate limit.
#[map(name = "RATE")]
pub static RATE: LruHashMap<u32, RateWindow> = LruHashMap::with_max_entries(RATE_ENTRIES, 0);

/// Per process, records the rate limit suppressed (userspace reads them
/// into loss records; the exact totals are in `LOSSES`).
#[map(name = "RATE_LIMITED")]
pub static RATE_LIMITED: LruHashMap<u32, u64> =
    LruHashMap::with_max_entries(RATE_LIMITED_ENTRIES, 0);
