//! Path reconstruction by walking dentries and mounts, the tracepoint tier's
//! substitute for `bpf_d_path` (allowed only in LSM/fentry programs, which do
//! not load on every kernel).
//!
//! The walk stops at the root of the task's mount namespace, so a path inside
//! a container reads as the container sees it (`/etc/shadow`), and crosses
//! mount points through `mount.mnt_parent`/`mnt_mountpoint`.
//!
//! Cost is per component, so each step is one probe: a window over the
//! dentry covering `d_parent`, `d_name` and the inline name, which holds
//! every name shorter than DNAME_INLINE_LEN; longer names take a second probe.
use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use sensor_common::{
    DENTRY_WINDOW, FILE_WINDOW, INLINE_NAME_COPY, MOUNT_WINDOW, NAME_MAX, OpenInterest,
    PATH_DEPTH_MAX, PATH_MAX, Scratch, flags, name_fingerprint, tail_word,
};

use super::read::{ReadError, Window, kptr};
use crate::{globals::off, maps::OPEN_NAMES};

/// Where a walk starts: a `struct path`'s dentry and vfsmount.
pub struct PathStart {
    dentry: u64,
    vfsmnt: u64,
}

/// The path and inode of an open file, with one probe.
#[inline(always)]
pub fn file_parts(file: u64) -> Result<(PathStart, u64), ReadError> {
    let dentry_off = off!(file_path) + off!(path_dentry);
    let mnt_off = off!(file_path) + off!(path_mnt);
    let inode_off = off!(file_inode);
    let lo = min(min(dentry_off, mnt_off), inode_off);
    let hi = max(max(dentry_off, mnt_off), inode_off) + 8;
    let mut buf = core::mem::MaybeUninit::<[u8; FILE_WINDOW]>::uninit();
    let w = Window::read(buf.as_mut_ptr().cast(), FILE_WINDOW, file, lo, hi)?;
    Ok((
        PathStart {
            dentry: w.get(dentry_off),
            vfsmnt: w.get(mnt_off),
        },
        w.get(inode_off),
    ))
}

/// A `struct path` at `path` (e.g. `&fs->pwd`).
#[inline(always)]
pub fn path_at(path: u64) -> Result<PathStart, ReadError> {
    Ok(PathStart {
        dentry: kptr(path, off!(path_dentry))?,
        vfsmnt: kptr(path, off!(path_mnt))?,
    })
}

#[inline(always)]
fn min(a: usize, b: usize) -> usize {
    if a < b { a } else { b }
}

#[inline(always)]
fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// Writes the components of `start` leaf first, each NUL-terminated, at
/// `buf[base..]`. Returns (bytes written, flag bits).
#[inline(always)]
pub fn write_path(s: *mut Scratch, base: usize, start: PathStart) -> (usize, u32) {
    walk_path(s, base, start, &mut |_, _, _| {})
}

/// Like [`write_path`], and reports whether `interest` wants the path: a
/// component whose fingerprint is in `OPEN_NAMES`, or a leaf with a wanted
/// suffix. What a component decides goes to map memory, not a register: a
/// value live across the walk's loop multiplies the states older
/// verifiers explore (6.1 took minutes under emulation).
#[inline(always)]
pub fn write_path_matching(
    s: *mut Scratch,
    base: usize,
    start: PathStart,
    interest: &OpenInterest,
) -> (usize, u32, bool) {
    // SAFETY: this CPU's scratch value (see emit::header).
    unsafe {
        core::ptr::write_volatile(&raw mut (*s).matched, 0);
        core::ptr::write_volatile(&raw mut (*s).leaf_len, 0);
    }
    let (len, bits) = walk_path(s, base, start, &mut |name, name_len, leaf| {
        // SAFETY: `name` points into scratch with at least NAME_MAX + 9
        // bytes after it (the slack past base + PATH_MAX, then more buffer);
        // unaligned loads are fine on the architectures BPF JITs run.
        let first8 = unsafe { core::ptr::read_unaligned(name as *const u64) };
        let key = name_fingerprint(first8, name_len);
        // SAFETY: as above.
        unsafe {
            if interest.may_name(key) && OPEN_NAMES.get(&key).is_some() {
                core::ptr::write_volatile(&raw mut (*s).matched, 1);
            }
            if leaf {
                core::ptr::write_volatile(&raw mut (*s).leaf_len, name_len as u64);
            }
        }
    });
    // The leaf was written first, at `base`.
    // SAFETY: as above; the mask keeps the offset under NAME_MAX.
    let (matched, leaf_len) = unsafe {
        (
            core::ptr::read_volatile(&raw const (*s).matched),
            core::ptr::read_volatile(&raw const (*s).leaf_len) as usize & NAME_MAX,
        )
    };
    // SAFETY: `s` is this CPU's scratch value and `base` is the open
    // record's TAIL: a header and a payload into `buf`, whose size leaves
    // more than PATH_MAX + NAME_MAX bytes after that (MAX_RECORD + NAME_MAX
    // < SCRATCH_SIZE, asserted in sensor-common), so `leaf` is inside `buf`.
    let leaf = unsafe { (*s).buf.as_ptr().add(base) };
    let end8 = if leaf_len >= 8 {
        // SAFETY: base + NAME_MAX + 8 lies inside scratch.
        unsafe { core::ptr::read_unaligned(leaf.add((leaf_len - 8) & NAME_MAX) as *const u64) }
    } else {
        // SAFETY: as above.
        unsafe { core::ptr::read_unaligned(leaf as *const u64) }
    };
    let hit = matched != 0 || interest.wants_tail(tail_word(end8, leaf_len));
    (len, bits, hit)
}

/// A mount's (mnt_parent, mnt_mountpoint, mnt.mnt_root), with one probe
/// into scratch: the walk needs all three at each mount it crosses. An
/// unreadable mount reads as its own parent with no root, so the walk goes
/// on through its dentries and stops above them.
#[inline(always)]
fn mount_fields(s: *mut Scratch, mnt: u64) -> (u64, u64, u64) {
    let (parent_off, point_off, root_off) = (
        off!(mount_parent),
        off!(mount_mountpoint),
        off!(mount_mnt) + off!(vfsmount_root),
    );
    let lo = min(min(parent_off, point_off), root_off);
    let hi = max(max(parent_off, point_off), root_off) + 8;
    // SAFETY: this CPU's scratch value.
    let dst = unsafe { (&raw mut (*s).mount) as *mut u8 };
    match Window::read(dst, MOUNT_WINDOW, mnt, lo, hi) {
        Ok(w) => (w.get(parent_off), w.get(point_off), w.get(root_off)),
        Err(_) => (mnt, 0, 0),
    }
}

/// The walk; `on_name(name, len, is_leaf)` sees each component as copied.
#[inline(always)]
fn walk_path(
    s: *mut Scratch,
    base: usize,
    start: PathStart,
    on_name: &mut impl FnMut(*const u8, usize, bool),
) -> (usize, u32) {
    let PathStart { mut dentry, vfsmnt } = start;
    if dentry == 0 || vfsmnt == 0 {
        return (0, 0);
    }
    let (parent_off, name_off, len_off) = (
        off!(dentry_parent),
        off!(dentry_name),
        off!(dentry_name_len),
    );
    let (iname_off, iname_len) = (off!(dentry_iname), off!(dentry_iname_len));
    let lo = min(min(parent_off, name_off), min(len_off, iname_off));
    let hi = max(
        max(parent_off + 8, name_off + 8),
        max(len_off + 4, iname_off + iname_len),
    );
    // Names that fit the inline copy come from the window.
    let inline_max = min(iname_len, INLINE_NAME_COPY);

    let mut mnt = vfsmnt - off!(mount_mnt) as u64;
    let (mut mnt_parent, mut mnt_point, mut mnt_root) = mount_fields(s, mnt);
    // SAFETY: this CPU's scratch value (see emit::header).
    unsafe { core::ptr::write_volatile(&raw mut (*s).cursor, 0) };
    let mut result = flags::PATH_COMPONENTS | flags::PATH_TRUNCATED;
    for _ in 0..PATH_DEPTH_MAX {
        if dentry == mnt_root {
            if mnt_parent == mnt {
                result &= !flags::PATH_TRUNCATED;
                break;
            }
            dentry = mnt_point;
            mnt = mnt_parent;
            (mnt_parent, mnt_point, mnt_root) = mount_fields(s, mnt);
            continue;
        }
        // SAFETY: this CPU's scratch value.
        let dst = unsafe { (&raw mut (*s).dentry) as *mut u8 };
        let Ok(w) = Window::read(dst, DENTRY_WINDOW, dentry, lo, hi) else {
            break;
        };
        let parent: u64 = w.get(parent_off);
        let name: u64 = w.get(name_off);
        let name_len = w.get::<u32>(len_off) as usize;
        // Its own parent but not a mount root: a pseudo object (memfd, pipe,
        // anon inode) or a disconnected dentry. Its name is all there is.
        let detached = parent == dentry;
        if detached {
            result = (result & !flags::PATH_TRUNCATED) | flags::PATH_PSEUDO;
        }
        if parent == 0 || name == 0 {
            break;
        }
        // SAFETY: as above; the cursor is re-read from memory on purpose.
        // The mask bounds the value before the compiler can spill it: a
        // bound learnt by the compare alone is lost on the stack copy by
        // verifiers before 6.x, which then refuse the pointer arithmetic.
        let len = unsafe { core::ptr::read_volatile(&raw const (*s).cursor) } as usize
            & (2 * PATH_MAX - 1);
        if len > PATH_MAX {
            break;
        }
        // SAFETY: len <= PATH_MAX and the buffer has NAME_MAX + 1 bytes of
        // slack past base + PATH_MAX (asserted in sensor-common).
        let dst = unsafe { (*s).buf.as_mut_ptr().add(base + len) };
        let n = if name == dentry + iname_off as u64 && name_len < inline_max {
            // SAFETY: fixed-size copy from the window (checked at load to
            // hold INLINE_NAME_COPY bytes from iname_off) into the slack.
            unsafe {
                core::ptr::copy_nonoverlapping(w.at(iname_off), dst, INLINE_NAME_COPY);
                *dst.add(name_len) = 0;
            }
            name_len as i64 + 1
        } else {
            // SAFETY: as above, at most NAME_MAX + 1 bytes.
            unsafe {
                bpf_probe_read_kernel_str(dst.cast(), (NAME_MAX + 1) as u32, name as *const _)
            }
        };
        if n <= 0 {
            break;
        }
        on_name(dst, (n - 1) as usize & NAME_MAX, len == 0);
        // SAFETY: `cursor` is a field of this CPU's scratch value, which
        // nothing else writes while this program runs (see emit::header).
        unsafe { core::ptr::write_volatile(&raw mut (*s).cursor, (len + n as usize) as u64) };
        if detached {
            break;
        }
        dentry = parent;
    }
    // SAFETY: as above; the cursor was zeroed before the loop, so it is
    // initialised even when the walk stopped at once.
    let len = unsafe { core::ptr::read_volatile(&raw const (*s).cursor) } as usize;
    (len, result)
}
