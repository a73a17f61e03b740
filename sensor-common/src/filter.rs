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
    /// Others' bpf(2) program and link commands, and ptrace,
    /// process_vm_* and signals aimed at the sensor.
    pub const TAMPER: u32 = 1 << 5;
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
    /// Open and connect records one process may emit per second (0: no
    /// limit); beyond it they are counted, not sent (see [`RateWindow`]).
    pub rate_limit: u32,
    /// Explicit padding.
    pub _pad: u32,
}

/// Most processes the rate limit tracks at once (LRU: the least recently
/// active make room).
pub const RATE_ENTRIES: u32 = 8192;
/// Most processes whose rate-limited records are attributed at once.
pub const RATE_LIMITED_ENTRIES: u32 = 1024;

/// A process's current one-second window of the rate limit (the `RATE`
/// map's value, keyed by pid). Opens and connects have an allowance each:
/// a flood of cheap opens must not use up the budget of the connect that
/// sends the data out.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RateWindow {
    /// Boot time the window started.
    pub start_ns: u64,
    /// Open records the process emitted or had suppressed in it.
    pub opens: u32,
    /// The same for connect records.
    pub connects: u32,
}

#[cfg(all(feature = "user", target_os = "linux"))]
// SAFETY: repr(C) of u64, u32, u32: no padding, and any bit pattern is a
// valid value, so it can be read from and written to map bytes (aya::Pod).
unsafe impl aya::Pod for RateWindow {}

#[cfg(all(feature = "user", target_os = "linux"))]
// SAFETY: repr(C) integers only, laid out without implicit padding (`_pad`
// is a field), so every byte is initialised and any bit pattern is valid.
unsafe impl aya::Pod for FilterConfig {}

/// Most path component names the `OPEN_NAMES` map holds.
pub const INTEREST_NAMES: usize = 64;
/// Most file-name suffixes an [`OpenInterest`] can hold.
pub const INTEREST_SUFFIXES: usize = 8;
/// Bits of [`OpenInterest::name_bits`].
pub const INTEREST_NAME_BITS: usize = 1024;

/// [`OpenInterest::mode`] bits. Zero captures every open, so a map entry
/// userspace never wrote filters nothing.
pub mod open_mode {
    /// Drop failed opens.
    pub const DROP_FAILED: u32 = 1 << 0;
    /// Drop opens for writing (see [`super::open_writes`]).
    pub const DROP_WRITES: u32 = 1 << 1;
    /// Keep a successful read-only open only when one of its path
    /// components has a fingerprint in the `OPEN_NAMES` map, or its file
    /// name ends with one of `suffixes`.
    pub const MATCH_READS: u32 = 1 << 2;
}

/// Which opens reach the ring, derived in userspace from the loaded rules
/// (an over-approximation: every open a rule could match is kept). One entry
/// of the `OPEN_INTEREST` array map, rewritten when the rules reload; the
/// component names live in the `OPEN_NAMES` hash map: one lookup per
/// component keeps the path walk simple for the verifier. `name_bits`
/// screens the components first: a hash-map lookup per component was a
/// sixth of what a filtered read cost, and most components are no name
/// the rules want.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenInterest {
    /// [`open_mode`] bits.
    pub mode: u32,
    /// Entries used in `suffixes`.
    pub suffix_count: u32,
    /// File-name suffixes as [`tail_word`]s (the suffix's bytes at the top).
    pub suffixes: [u64; INTEREST_SUFFIXES],
    /// Which top bytes of a [`tail_word`] each suffix covers.
    pub suffix_masks: [u64; INTEREST_SUFFIXES],
    /// A one-hash Bloom filter of the `OPEN_NAMES` keys: a component whose
    /// bit is clear is not one of them.
    pub name_bits: [u64; INTEREST_NAME_BITS / 64],
}

/// `CONNECT_INTEREST` bits: which connects are dropped before their record
/// is built (derived from the loaded rules, like [`OpenInterest`]).
pub mod connect_mode {
    /// Drop failed connects (see [`super::connect_drop_bits`]).
    pub const DROP_FAILED: u32 = 1 << 0;
    /// Drop connects to AF_UNIX addresses.
    pub const DROP_UNIX: u32 = 1 << 1;
    /// Drop connects to AF_INET and AF_INET6 addresses.
    pub const DROP_INET: u32 = 1 << 2;
    /// Drop connects to any other family.
    pub const DROP_OTHER: u32 = 1 << 3;
}

/// The [`connect_mode`] bits any of which drops a connect to `family` that
/// returned `ret`. Failed is anything but 0 and -EINPROGRESS, as the
/// `connect.success` rule field reads it.
#[inline(always)]
pub fn connect_drop_bits(family: u16, ret: i64) -> u32 {
    use crate::{AF_INET, AF_INET6, AF_UNIX};
    const EINPROGRESS: i64 = 115;
    let by_family = match family {
        AF_UNIX => connect_mode::DROP_UNIX,
        AF_INET | AF_INET6 => connect_mode::DROP_INET,
        _ => connect_mode::DROP_OTHER,
    };
    if ret != 0 && ret != -EINPROGRESS {
        by_family | connect_mode::DROP_FAILED
    } else {
        by_family
    }
}

/// Whether open flags make an open a write: the access mode, or O_CREAT,
/// O_TRUNC or O_TMPFILE (as the `open.write` rule field reads them).
#[inline(always)]
pub fn open_writes(flags: u32) -> bool {
    const O_ACCMODE: u32 = 0o3;
    const O_CREAT: u32 = 0o100;
    const O_TRUNC: u32 = 0o1000;
    const O_TMPFILE_BIT: u32 = 0o20000000;
    flags & O_ACCMODE != 0 || flags & (O_CREAT | O_TRUNC | O_TMPFILE_BIT) != 0
}

/// A name's fingerprint: its length and its first seven bytes. Equal names
/// have equal fingerprints; the rare unequal pair that shares one only
/// keeps an open that could have been dropped. `first8` is the name's first
/// eight bytes read little-endian (bytes past its end are ignored).
#[inline(always)]
pub fn name_fingerprint(first8: u64, len: usize) -> u64 {
    let kept = if len < 7 { len } else { 7 };
    let mask = (1u64 << (8 * kept)) - 1;
    ((len as u64 & 0xff) << 56) | (first8 & mask)
}

/// The last (up to) eight bytes of a name, its last byte in the top byte:
/// `suffix` matches when `tail & mask == suffix`. `word` is the eight bytes
/// that end the name when `len >= 8`, else the name's first eight bytes.
#[inline(always)]
pub fn tail_word(word: u64, len: usize) -> u64 {
    if len >= 8 {
        word
    } else if len == 0 {
        0
    } else {
        (word & ((1u64 << (8 * len)) - 1)) << (8 * (8 - len))
    }
}

/// A component name's key in `OPEN_NAMES`.
#[cfg(not(target_arch = "bpf"))]
pub fn name_key(name: &[u8]) -> u64 {
    name_fingerprint(le_word(name), name.len())
}

/// Reads up to eight bytes little-endian, zero-filled.
#[cfg(not(target_arch = "bpf"))]
pub fn le_word(bytes: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    let n = bytes.len().min(8);
    w[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(w)
}

/// A name fingerprint's bit in [`OpenInterest::name_bits`]: the top bits
/// of a multiplicative hash.
#[inline(always)]
pub fn name_bit(fingerprint: u64) -> usize {
    const SHIFT: u32 = 64 - INTEREST_NAME_BITS.trailing_zeros();
    (fingerprint.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> SHIFT) as usize
}

impl OpenInterest {
    /// Marks a component name's key (see [`name_key`]) in `name_bits`.
    pub fn add_name(&mut self, key: u64) {
        let bit = name_bit(key);
        self.name_bits[bit / 64] |= 1 << (bit % 64);
    }

    /// Whether `name_bits` leaves `fingerprint` possible.
    #[inline(always)]
    pub fn may_name(&self, fingerprint: u64) -> bool {
        let bit = name_bit(fingerprint);
        self.name_bits[(bit / 64) & (INTEREST_NAME_BITS / 64 - 1)] & (1 << (bit % 64)) != 0
    }

    /// Adds a file-name suffix (its last eight bytes count); false when full.
    #[cfg(not(target_arch = "bpf"))]
    pub fn add_suffix(&mut self, suffix: &[u8]) -> bool {
        let s = &suffix[suffix.len().saturating_sub(8)..];
        let value = tail_word(le_word(s), s.len());
        let mask = if s.len() >= 8 {
            u64::MAX
        } else {
            !((1u64 << (8 * (8 - s.len()))) - 1)
        };
        let n = self.suffix_count as usize;
        if (0..n).any(|i| self.suffixes[i] == value && self.suffix_masks[i] == mask) {
            return true;
        }
        if n == INTEREST_SUFFIXES {
            return false;
        }
        self.suffixes[n] = value;
        self.suffix_masks[n] = mask;
        self.suffix_count += 1;
        true
    }

    /// Whether a file name with this [`tail_word`] is wanted.
    #[inline(always)]
    pub fn wants_tail(&self, tail: u64) -> bool {
        any_of::<INTEREST_SUFFIXES>(self.suffix_count, |i| {
            tail & self.suffix_masks[i] == self.suffixes[i]
        })
    }

    /// What the kernel decides for an open of `path` (components separated
    /// by '/') with `names` in `OPEN_NAMES`: the same tests on the same
    /// words, for userspace checks.
    #[cfg(not(target_arch = "bpf"))]
    pub fn captures(&self, names: &[u64], path: &[u8], flags: u32, success: bool) -> bool {
        if !success {
            return self.mode & open_mode::DROP_FAILED == 0;
        }
        if open_writes(flags) {
            return self.mode & open_mode::DROP_WRITES == 0;
        }
        if self.mode & open_mode::MATCH_READS == 0 {
            return true;
        }
        let mut parts = path.split(|b| *b == b'/').filter(|c| !c.is_empty());
        let leaf = parts.clone().next_back().unwrap_or_default();
        let tail = tail_word(le_word(&leaf[leaf.len().saturating_sub(8)..]), leaf.len());
        self.wants_tail(tail)
            || parts.any(|c| {
                let key = name_fingerprint(le_word(c), c.len());
                self.may_name(key) && names.contains(&key)
            })
    }
}

/// Whether `test` holds for an index below `count` (at most `N`): a loop
/// with a constant bound, as the verifier wants.
#[inline(always)]
fn any_of<const N: usize>(count: u32, test: impl Fn(usize) -> bool) -> bool {
    let mut hit = false;
    let mut i = 0;
    while i < N {
        if i as u32 >= count {
            break;
        }
        hit |= test(i);
        i += 1;
    }
    hit
}

#[cfg(all(feature = "user", target_os = "linux"))]
// SAFETY: repr(C) of two u32 then u64 arrays: no padding, and any bit
// pattern is a valid value, so it can be copied to and from map bytes.
unsafe impl aya::Pod for OpenInterest {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_suffixes_match_as_the_kernel_reads_them() {
        let mut i = OpenInterest {
            mode: open_mode::MATCH_READS | open_mode::DROP_FAILED,
            ..OpenInterest::default()
        };
        let names = [name_key(b"Maildir"), name_key(b".thunderbird")];
        names.iter().for_each(|k| i.add_name(*k));
        assert!(i.add_suffix(b".pst"));
        assert!(i.add_suffix(b".verylongsuffix"));
        let kept = |p: &[u8]| i.captures(&names, p, 0, true);
        assert!(kept(b"/home/a/Maildir/cur/1"));
        assert!(kept(b"/home/a/.thunderbird/x"));
        assert!(kept(b"/data/Outlook.pst"));
        assert!(kept(b"/x/a.verylongsuffix"));
        assert!(!kept(b"/x/a.pst.bak"));
        assert!(!kept(b"/usr/lib/libc.so.6"));
        assert!(!kept(b"/home/a/Maildi/x"));
        // A name shorter than the suffix never matches it.
        assert!(!kept(b"/pst"));
        // Writes and failures by mode alone.
        assert!(i.captures(&names, b"/usr/lib/x", 0o1, true));
        assert!(!i.captures(&names, b"/home/a/Maildir/x", 0, false));
    }

    #[test]
    fn connect_drop_bits_name_the_family_and_a_failure() {
        use connect_mode::*;
        assert_eq!(connect_drop_bits(2, 0), DROP_INET);
        assert_eq!(connect_drop_bits(10, -115), DROP_INET);
        assert_eq!(connect_drop_bits(10, -111), DROP_INET | DROP_FAILED);
        assert_eq!(connect_drop_bits(1, 0), DROP_UNIX);
        assert_eq!(connect_drop_bits(16, -2), DROP_OTHER | DROP_FAILED);
    }

    #[test]
    fn open_writes_reads_access_mode_and_creating_flags() {
        assert!(!open_writes(0));
        assert!(!open_writes(0o2000000)); // O_CLOEXEC
        assert!(open_writes(0o1));
        assert!(open_writes(0o2));
        assert!(open_writes(0o100));
        assert!(open_writes(0o1000));
        assert!(open_writes(0o20200000)); // O_TMPFILE
    }
}
