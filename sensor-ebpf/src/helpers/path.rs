//! Path reconstruction by walking dentries and mounts, the tracepoint tier's
//! substitute for `bpf_d_path` (allowed only in LSM/fentry programs, which do
//! not load on every kernel).
//!
//! The walk stops at the root of the task's mount namespace, so a path inside
//! a container reads as the container sees it (`/etc/shadow`), and crosses
//! mount points through `mount.mnt_parent`/`mnt_mountpoint`.
use aya_ebpf::helpers::generated::bpf_probe_read_kernel_str;
use sensor_common::{NAME_MAX, PATH_DEPTH_MAX, PATH_MAX, Scratch, flags};

use super::read::{kptr, kread, kread_pair};
use crate::globals::off;

/// Writes the components of `*path` (a `struct path`) leaf first, each
/// NUL-terminated, at `buf[base..]`. Returns (bytes written, flag bits).
#[inline(always)]
pub fn write_path(s: *mut Scratch, base: usize, path: u64) -> (usize, u32) {
    let Ok((mut dentry, vfsmnt)) = kread_pair(path, off!(path_dentry), off!(path_mnt)) else {
        return (0, 0);
    };
    if dentry == 0 || vfsmnt == 0 {
        return (0, 0);
    }
    let mut mnt = vfsmnt - off!(mount_mnt) as u64;
    let mut mnt_root: u64 = kread(vfsmnt, off!(vfsmount_root)).unwrap_or(0);
    // SAFETY: this CPU's scratch value (see emit::header).
    unsafe { core::ptr::write_volatile(&raw mut (*s).cursor, 0) };
    let mut result = flags::PATH_COMPONENTS | flags::PATH_TRUNCATED;
    for _ in 0..PATH_DEPTH_MAX {
        if dentry == mnt_root {
            let parent = kptr(mnt, off!(mount_parent)).unwrap_or(mnt);
            if parent == mnt {
                result &= !flags::PATH_TRUNCATED;
                break;
            }
            dentry = kread(mnt, off!(mount_mountpoint)).unwrap_or(0);
            mnt = parent;
            mnt_root = kread(mnt + off!(mount_mnt) as u64, off!(vfsmount_root)).unwrap_or(0);
            continue;
        }
        let Ok((parent, name)) = kread_pair(dentry, off!(dentry_parent), off!(dentry_name)) else {
            break;
        };
        if parent == dentry {
            result &= !flags::PATH_TRUNCATED;
            break;
        }
        if parent == 0 || name == 0 {
            break;
        }
        // SAFETY: as above; the cursor is re-read from memory on purpose.
        let len = unsafe { core::ptr::read_volatile(&raw const (*s).cursor) } as usize;
        if len > PATH_MAX {
            break;
        }
        let n = unsafe {
            bpf_probe_read_kernel_str(
                (*s).buf.as_mut_ptr().add(base + len).cast(),
                (NAME_MAX + 1) as u32,
                name as *const _,
            )
        };
        if n <= 0 {
            break;
        }
        unsafe { core::ptr::write_volatile(&raw mut (*s).cursor, (len + n as usize) as u64) };
        dentry = parent;
    }
    let len = unsafe { core::ptr::read_volatile(&raw const (*s).cursor) } as usize;
    (len, result)
}
