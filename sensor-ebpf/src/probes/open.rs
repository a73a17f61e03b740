//! File opens through open, openat, openat2 and creat (called from
//! sys_exit), and through io_uring (called from the LSM tier's file_open).
use aya_ebpf::helpers::generated::{bpf_d_path, bpf_probe_read_user_str};
use sensor_common::{EventKind, OpenEvent, OpenSyscall, PATH_MAX, flags, open_mode, open_writes};

use crate::{
    globals::off,
    helpers::{
        args::Args,
        emit::{HEADER, count_filtered, count_read_error, header, payload, scratch, submit},
        path::{file_parts, path_at, write_path, write_path_matching},
        read::{Direct, Mem, kread, uread},
        task,
    },
    maps::OPEN_INTEREST,
};

const AT_FDCWD: i64 = -100;
const O_WRONLY: u32 = 0o1;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;
const TAIL: usize = HEADER + core::mem::size_of::<OpenEvent>();

// A BPF function of its own, whatever the inliner would do: sys_exit's
// frame stays small, and the verifier's 512-byte limit applies to the
// frames of a call chain added up.
#[inline(never)]
pub fn on_exit<M: Mem>(syscall: OpenSyscall, args: &Args, ret: i64) {
    // (syscall, dirfd, user path pointer, flags, mode)
    let (dfd, upath, open_flags, mode) = match syscall {
        OpenSyscall::Open => (
            AT_FDCWD,
            args.get::<M>(0),
            args.get::<M>(1) as u32,
            args.get::<M>(2) as u32,
        ),
        OpenSyscall::Creat => (
            AT_FDCWD,
            args.get::<M>(0),
            O_CREAT | O_WRONLY | O_TRUNC,
            args.get::<M>(1) as u32,
        ),
        OpenSyscall::Openat => (
            args.get::<M>(0) as i32 as i64,
            args.get::<M>(1),
            args.get::<M>(2) as u32,
            args.get::<M>(3) as u32,
        ),
        OpenSyscall::Openat2 => {
            // openat2: flags and mode live in the caller's struct open_how.
            let how = args.get::<M>(2);
            let f: u64 = uread(how).unwrap_or(0);
            let m: u64 = uread(how + 8).unwrap_or(0);
            (
                args.get::<M>(0) as i32 as i64,
                args.get::<M>(1),
                f as u32,
                m as u32,
            )
        }
        // Never a syscall number: see from_io_uring.
        OpenSyscall::IoUring => return,
    };

    // What the rules cannot match goes no further: before the header, the
    // path walk and the ring, which are most of an open's cost.
    let interest = OPEN_INTEREST.get(0);
    let wanted = interest.map_or(0, |i| i.mode);
    let writes = open_writes(open_flags);
    if (ret < 0 && wanted & open_mode::DROP_FAILED != 0)
        || (ret >= 0 && writes && wanted & open_mode::DROP_WRITES != 0)
    {
        count_filtered(EventKind::Open);
        return;
    }
    let matching = match interest {
        Some(i) if ret >= 0 && !writes && wanted & open_mode::MATCH_READS != 0 => Some(i),
        _ => None,
    };

    let current = M::current();
    let Some(s) = scratch() else {
        count_read_error(EventKind::Open);
        return;
    };
    let e = payload::<OpenEvent>(s);
    // Stored before the walk: a value the verifier knows exactly (the
    // syscall differs per caller path) and that stays live across the loop
    // multiplies the states it must explore there.
    // SAFETY: scratch value of this CPU.
    unsafe {
        (*e).syscall = syscall as u32;
        (*e).open_flags = open_flags;
        (*e).mode = mode;
        (*e).ret = ret as i32;
        (*e)._pad = 0;
    }
    let mut ino = 0u64;
    let mut rel_len = 0usize;
    let (path_len, bits) = if ret >= 0 {
        match task::fd_file::<M>(current, ret) {
            Ok(file) => match file_parts(file) {
                Ok((start, inode)) => {
                    let (len, bits) = match matching {
                        Some(interest) => {
                            let (len, bits, hit) = write_path_matching(s, TAIL, start, interest);
                            if !hit {
                                count_filtered(EventKind::Open);
                                return;
                            }
                            (len, bits)
                        }
                        None => write_path(s, TAIL, start),
                    };
                    ino = kread(inode, off!(inode_ino)).unwrap_or(0);
                    (len, bits | flags::PATH_RESOLVED)
                }
                Err(_) => (0, 0),
            },
            Err(_) => (0, 0),
        }
    } else {
        // No file to resolve: keep the caller's string and, if relative, the
        // directory it was relative to.
        // SAFETY: destination inside scratch: TAIL + PATH_MAX < SCRATCH_SIZE.
        let n = unsafe {
            bpf_probe_read_user_str(
                (*s).buf.as_mut_ptr().add(TAIL).cast(),
                PATH_MAX as u32,
                upath as *const _,
            )
        };
        if n > 1 {
            rel_len = (n - 1) as usize & (PATH_MAX - 1);
        }
        // SAFETY: `s` is this CPU's scratch value, and TAIL is a constant
        // index inside `buf` (bounds-checked like any array index).
        let absolute = rel_len > 0 && unsafe { (*s).buf[TAIL] } == b'/';
        if rel_len == 0 || absolute {
            (0, 0)
        } else {
            let dir = if dfd == AT_FDCWD {
                M::ptr(current, off!(task_fs)).and_then(|fs| path_at(fs + off!(fs_pwd) as u64))
            } else {
                task::fd_file::<M>(current, dfd).and_then(|f| file_parts(f).map(|(start, _)| start))
            };
            match dir {
                Ok(dir) => {
                    let (len, bits) = write_path(s, TAIL + rel_len, dir);
                    (len, bits | flags::PATH_JOINED)
                }
                Err(_) => (0, 0),
            }
        }
    };
    // After the walk, which may still drop the open: a filtered open costs
    // none of the header's helper calls.
    header::<M>(s, EventKind::Open, None);
    // SAFETY: scratch value of this CPU.
    unsafe {
        (*e).ino = ino;
        (*e).flags = bits | args.flags();
        (*e).path_len = path_len as u32;
        (*e).rel_len = rel_len as u32;
    }
    submit(
        s,
        TAIL + rel_len + (path_len & (2 * PATH_MAX - 1)),
        EventKind::Open,
    );
}

/// LSM tier, an open made by io_uring: no syscall exit will follow, so it is
/// reported here, from the file the kernel is about to hand out. The path is
/// `bpf_d_path`'s (the kernel's own d_path, relative to the caller's root
/// like the walk), with the walk as fallback when it fails.
#[inline(always)]
pub fn from_io_uring(file: u64) {
    let Some(s) = scratch() else {
        count_read_error(EventKind::Open);
        return;
    };
    header::<Direct>(s, EventKind::Open, None);
    let e = payload::<OpenEvent>(s);
    // SAFETY: `file` is the hook's BTF-typed argument, so `&file->f_path`
    // is a `struct path` the helper accepts; the destination lies inside
    // scratch (TAIL + PATH_MAX < SCRATCH_SIZE).
    let n = unsafe {
        bpf_d_path(
            (file + off!(file_path) as u64) as *mut _,
            (*s).buf.as_mut_ptr().add(TAIL).cast(),
            PATH_MAX as u32,
        )
    };
    let (path_len, bits) = if n > 1 {
        // The string without its NUL.
        ((n - 1) as usize & (PATH_MAX - 1), flags::PATH_D_PATH)
    } else {
        match file_parts(file) {
            Ok((start, _)) => write_path(s, TAIL, start),
            Err(_) => (0, 0),
        }
    };
    let open_flags: u32 = Direct::read(file, off!(file_f_flags)).unwrap_or(0);
    let ino = Direct::ptr(file, off!(file_inode))
        .and_then(|inode| kread(inode, off!(inode_ino)))
        .unwrap_or(0);
    // SAFETY: scratch value of this CPU.
    unsafe {
        (*e).syscall = OpenSyscall::IoUring as u32;
        (*e).open_flags = open_flags;
        (*e).mode = 0;
        (*e).ret = 0;
        (*e).ino = ino;
        (*e).flags = bits | flags::PATH_RESOLVED | flags::IO_URING;
        (*e).path_len = path_len as u32;
        (*e).rel_len = 0;
        (*e)._pad = 0;
    }
    submit(s, TAIL + (path_len & (2 * PATH_MAX - 1)), EventKind::Open);
}
