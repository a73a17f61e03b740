//! Record assembly in per-CPU scratch memory and hand-off to the ring.
//!
//! Records are built in a map value (the 512-byte stack is far too small) and
//! copied with `bpf_ringbuf_output`, which takes a variable length: small
//! events stay small on the ring, unlike a fixed-size reserve.
use aya_ebpf::helpers::generated::{
    bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
    bpf_get_current_uid_gid, bpf_ktime_get_boot_ns,
};
use sensor_common::{
    EVENT_KIND_SLOTS, EventHeader, EventKind, RateLimitedEvent, RateWindow, SCRATCH_SIZE, Scratch,
};

use super::{read::Mem, task};
use crate::{
    globals::filter,
    maps::{EVENTS, FILTERED, LOSSES, RATE, RATE_LIMITED, SCRATCH},
};

const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

/// Size of the common header.
pub const HEADER: usize = core::mem::size_of::<EventHeader>();

/// This CPU's scratch area.
#[inline(always)]
pub fn scratch() -> Option<*mut Scratch> {
    SCRATCH.get_ptr_mut(0)
}

/// Fills the header at the start of `s` for the current task. `v1_of` is
/// the task whose cgroup v1 membership to report: process lifecycle events
/// pass it, the rest rely on the process table to save four reads per event.
#[inline(always)]
pub fn header<M: Mem>(s: *mut Scratch, kind: EventKind, v1_of: Option<u64>) {
    // SAFETY: `s` is this CPU's scratch value; programs do not nest on a CPU
    // for these tracepoints, so nothing else writes it meanwhile.
    unsafe {
        let h = (*s).buf.as_mut_ptr() as *mut EventHeader;
        (*h).kind = kind as u32;
        (*h).size = 0;
        (*h).boot_ns = bpf_ktime_get_boot_ns();
        let pid_tgid = bpf_get_current_pid_tgid();
        (*h).tid = pid_tgid as u32;
        (*h).pid = (pid_tgid >> 32) as u32;
        let uid_gid = bpf_get_current_uid_gid();
        (*h).uid = uid_gid as u32;
        (*h).gid = (uid_gid >> 32) as u32;
        (*h).cgroup_id = bpf_get_current_cgroup_id();
        (*h).cgroup_v1_id = v1_of.map_or(0, task::cgroup_v1_id::<M>);
        bpf_get_current_comm((*h).comm.as_mut_ptr().cast(), (*h).comm.len() as u32);
    }
}

/// Pointer to the payload after the header.
#[inline(always)]
pub fn payload<T>(s: *mut Scratch) -> *mut T {
    // SAFETY: HEADER + size_of::<T>() is far inside the scratch buffer.
    unsafe { (*s).buf.as_mut_ptr().add(HEADER) as *mut T }
}

/// Sends the first `len` bytes of `s` to the ring; counts the loss if full.
/// Opens and connects count against their process's rate limit first.
#[inline(always)]
pub fn submit(s: *mut Scratch, len: usize, kind: EventKind) {
    if matches!(kind, EventKind::Open | EventKind::Connect) && !admit(s, kind) {
        return;
    }
    output(s, len, kind, false);
}

/// Whether the process of the record in `s` (its header filled) is within
/// `FilterConfig::rate_limit` records this second. One process flooding
/// opens would otherwise fill the ring, and the records lost to a full
/// ring are everyone's: limited, they are its own, counted under its pid.
///
/// A BPF function of its own, its map keys in scratch: inlined, it took the
/// open path's call chain past the verifier's 512 bytes of stack.
#[inline(never)]
fn admit(s: *mut Scratch, kind: EventKind) -> bool {
    const SECOND: u64 = 1_000_000_000;
    let limit = filter!(rate_limit) as u64;
    if limit == 0 {
        return true;
    }
    // SAFETY: this CPU's scratch value, its header written by `header`.
    let (pid, now) = unsafe {
        let h = (*s).buf.as_ptr() as *const EventHeader;
        (&(*h).pid, (*h).boot_ns)
    };
    match RATE.get_ptr_mut(pid) {
        // SAFETY: a value of the map. Threads of one process on other CPUs
        // may race on it: the limit is then reached a little late, while
        // every record is still either sent or counted.
        Some(w) => unsafe {
            // Saturating: a record stamped just before another CPU opened
            // this window counts in it rather than opening another.
            if now.saturating_sub((*w).start_ns) >= SECOND {
                (*w).start_ns = now;
                (*w).opens = 0;
                (*w).connects = 0;
            }
            let used = if kind == EventKind::Connect {
                &mut (*w).connects
            } else {
                &mut (*w).opens
            };
            *used = used.saturating_add(1);
            if *used as u64 <= limit {
                return true;
            }
            if *used as u64 == limit + 1 {
                announce(s, kind, limit as u32, (*w).start_ns);
            }
        },
        None => {
            let is_connect = u32::from(kind == EventKind::Connect);
            let fresh = RateWindow {
                start_ns: now,
                opens: 1 - is_connect,
                connects: is_connect,
            };
            // A full LRU map evicts; a failed insert only forgoes limiting.
            let _ = RATE.insert(pid, &fresh, 0);
            return true;
        }
    }
    if let Some(c) = LOSSES.get_ptr_mut(0) {
        // SAFETY: per-CPU value, index bounded by the enum.
        unsafe { (*c).rate_limited[kind as usize & (EVENT_KIND_SLOTS - 1)] += 1 };
    }
    match RATE_LIMITED.get_ptr_mut(pid) {
        // SAFETY: as above; a lost race only under-attributes.
        Some(n) => unsafe { *n += 1 },
        None => {
            let _ = RATE_LIMITED.insert(pid, &1, 0);
        }
    }
    false
}

/// Turns the record in `s`, the first one over the limit, into the window's
/// [`EventKind::RateLimited`] record: the header stays (who, where, when),
/// the payload says what is suppressed from now on. A flood meant to hide
/// a process's records thus leaves one record of its own, which rules can
/// match, where otherwise only loss counts would show it.
#[inline(always)]
fn announce(s: *mut Scratch, kind: EventKind, limit: u32, window_start_ns: u64) {
    const LEN: usize = HEADER + core::mem::size_of::<RateLimitedEvent>();
    // SAFETY: this CPU's scratch value; the suppressed record it held is
    // not sent, so its payload may be overwritten.
    unsafe {
        let h = (*s).buf.as_mut_ptr() as *mut EventHeader;
        (*h).kind = EventKind::RateLimited as u32;
        let e = payload::<RateLimitedEvent>(s);
        (*e).suppressed = kind as u32;
        (*e).limit = limit;
        (*e).window_start_ns = window_start_ns;
    }
    output(s, LEN, EventKind::RateLimited, false);
}

/// Like [`submit`], and wakes the reader at once: for records whose context
/// userspace must read while it still exists (a container's runtime state
/// leaves with a short-lived container).
#[inline(always)]
pub fn submit_now(s: *mut Scratch, len: usize, kind: EventKind) {
    output(s, len, kind, true);
}

#[inline(always)]
fn output(s: *mut Scratch, len: usize, kind: EventKind, urgent: bool) {
    // The mask is for the verifier: every record is shorter than the buffer.
    let len = len & (SCRATCH_SIZE - 1);
    // SAFETY: see `header`; len is within the buffer.
    unsafe {
        let h = (*s).buf.as_mut_ptr() as *mut EventHeader;
        (*h).size = len as u32;
        // Batched wakeups: wake the reader once, when pending data crosses
        // the threshold; it also polls on a short timer, so a quiet ring is
        // still drained. Forcing a wakeup on every record above the threshold
        // would cost an irq_work per event exactly when the reader lags.
        let pending = EVENTS.query(BPF_RB_AVAIL_DATA);
        let threshold = filter!(wakeup_bytes);
        let crossing = pending < threshold && pending + len as u64 >= threshold;
        let flags = if crossing || urgent {
            BPF_RB_FORCE_WAKEUP
        } else {
            BPF_RB_NO_WAKEUP
        };
        let data = core::slice::from_raw_parts((*s).buf.as_ptr(), len);
        if EVENTS.output(data, flags).is_err() {
            count_ring_full(kind);
        }
    }
}

#[inline(always)]
fn count_ring_full(kind: EventKind) {
    if let Some(c) = LOSSES.get_ptr_mut(0) {
        // SAFETY: per-CPU value, index bounded by the enum.
        unsafe { (*c).ring_full[kind as usize & (EVENT_KIND_SLOTS - 1)] += 1 };
    }
}

/// Counts a record that could not be built at all (no scratch, failed read
/// of a field the record cannot exist without).
#[inline(always)]
pub fn count_read_error(kind: EventKind) {
    if let Some(c) = LOSSES.get_ptr_mut(0) {
        // SAFETY: as above.
        unsafe { (*c).read_error[kind as usize & (EVENT_KIND_SLOTS - 1)] += 1 };
    }
}

/// Counts a record dropped because no loaded rule could match it.
#[inline(always)]
pub fn count_filtered(kind: EventKind) {
    if let Some(c) = FILTERED.get_ptr_mut(kind as u32 & (EVENT_KIND_SLOTS as u32 - 1)) {
        // SAFETY: this CPU's counter; programs do not nest on a CPU here.
        unsafe { *c += 1 };
    }
}
