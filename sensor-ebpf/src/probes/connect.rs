//! Outbound connects: IPv4, IPv6 (v4-mapped included), AF_UNIX paths
//! (abstract names too), TCP and UDP.
//!
//! Reported at sys_exit, which knows the result. The destination is parsed
//! from the kernel's own copy of the address when the LSM tier stashed it
//! at `socket_connect` (a second thread cannot rewrite that one after the
//! fact); otherwise from the caller's sockaddr, read back at exit. Socket
//! type and protocol come from the kernel socket.
use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid,
    generated::{bpf_probe_read_kernel, bpf_probe_read_user},
};
use sensor_common::{
    AF_INET, AF_INET6, AF_UNIX, ConnectEvent, ConnectStash, EventKind, Scratch, UNAVAILABLE,
    UNIX_PATH_MAX, connect_drop_bits, flags,
};

use crate::{
    globals::off,
    helpers::{
        args::Args,
        emit::{HEADER, count_filtered, count_read_error, header, payload, scratch, submit},
        read::{Mem, Probe, ReadError, kptr, kread, uread},
        task,
    },
    maps::{CONNECT_INTEREST, CONNECT_STASH},
};

const EBADF: i64 = 9;
const ENOTSOCK: i64 = 88;
const TAIL: usize = HEADER + core::mem::size_of::<ConnectEvent>();

/// Where the sockaddr bytes are.
#[derive(Clone, Copy)]
enum Sockaddr {
    /// The caller's buffer.
    User(u64),
    /// The kernel's copy (the LSM hook's argument).
    Kernel(u64),
}

impl Sockaddr {
    #[inline(always)]
    fn read<T: Copy>(self, at: usize) -> Result<T, ReadError> {
        match self {
            Self::User(p) => uread(p + at as u64),
            Self::Kernel(p) => kread(p, at),
        }
    }

    /// Copies `len` bytes from offset `at` to `dst`; true on success.
    #[inline(always)]
    fn copy(self, at: usize, dst: *mut u8, len: u32) -> bool {
        // SAFETY: the callers bound `len` by the destination's size.
        let r = unsafe {
            match self {
                Self::User(p) => bpf_probe_read_user(dst.cast(), len, (p + at as u64) as *const _),
                Self::Kernel(p) => {
                    bpf_probe_read_kernel(dst.cast(), len, (p + at as u64) as *const _)
                }
            }
        };
        r == 0
    }
}

/// Fills the destination fields of `e` (family, port, addr, unix_path_len)
/// and the unix path at `unix_dst` (room for UNIX_PATH_MAX bytes). None when
/// not even the family is readable: nothing was connected to (EFAULT).
#[inline(always)]
fn parse(src: Sockaddr, addrlen: usize, e: *mut ConnectEvent, unix_dst: *mut u8) -> Option<()> {
    let family = src.read::<u16>(0).ok()?;
    let mut port = 0u16;
    let mut ip = [0u8; 16];
    let mut unix_len = 0usize;
    match family {
        AF_INET => {
            port = u16::from_be(src.read(2).unwrap_or(0));
            let v4: [u8; 4] = src.read(4).unwrap_or([0; 4]);
            ip[..4].copy_from_slice(&v4);
        }
        AF_INET6 => {
            port = u16::from_be(src.read(2).unwrap_or(0));
            ip = src.read(8).unwrap_or([0; 16]);
        }
        AF_UNIX if addrlen > 2 => {
            let mut want = addrlen - 2;
            if want > UNIX_PATH_MAX {
                want = UNIX_PATH_MAX;
            }
            if src.copy(2, unix_dst, want as u32) {
                unix_len = want;
            }
        }
        _ => {}
    }
    // SAFETY: `e` points into this CPU's scratch or the caller's stack.
    unsafe {
        (*e).family = family;
        (*e).port = port;
        (*e).addr = ip;
        (*e).unix_path_len = unix_len as u32;
    }
    Some(())
}

// A BPF function of its own, whatever the inliner would do: sys_exit's
// frame stays small, and the verifier's 512-byte limit applies to the
// frames of a call chain added up.
#[inline(never)]
pub fn on_exit<M: Mem>(args: &Args, ret: i64) {
    let fd = args.get::<M>(0) as i32;
    let current = M::current();
    // private_data is a `struct socket` only on a socket inode; the fd may
    // name anything when connect failed early (or was swapped since).
    // 0 for none: an Option would leave its payload slot uninitialised on
    // the None path, and 5.10's verifier refuses the compiler's read of it.
    let sock = if ret != -EBADF && ret != -ENOTSOCK {
        task::fd_file::<M>(current, fd as i64)
            .ok()
            .filter(|&file| is_socket(file))
            .and_then(|file| kptr(file, off!(file_private_data)).ok())
            .unwrap_or(0)
    } else {
        0
    };
    let tid = bpf_get_current_pid_tgid();
    // SAFETY: the value is only written by this thread's own LSM hook.
    let stashed = unsafe { CONNECT_STASH.get(&tid) };
    report::<M>(args, ret, fd, sock, stashed);
    if stashed.is_some() {
        let _ = CONNECT_STASH.remove(&tid);
    }
}

/// A connect record begun in scratch: (scratch, payload, unix path tail).
#[inline(always)]
fn begin() -> Option<(*mut Scratch, *mut ConnectEvent, *mut u8)> {
    let Some(s) = scratch() else {
        count_read_error(EventKind::Connect);
        return None;
    };
    header::<Probe>(s, EventKind::Connect, None);
    // SAFETY: TAIL + UNIX_PATH_MAX lies inside the scratch buffer.
    let unix_dst = unsafe { (*s).buf.as_mut_ptr().add(TAIL) };
    Some((s, payload::<ConnectEvent>(s), unix_dst))
}

#[inline(always)]
fn report<M: Mem>(args: &Args, ret: i64, fd: i32, sock: u64, stashed: Option<&ConnectStash>) {
    let Some((s, e, unix_dst)) = begin() else {
        return;
    };
    let mut bits = args.flags();
    match stashed {
        // The stash is for this socket; anything else is left over from a
        // connect whose exit this hook did not see.
        Some(c) if sock != 0 && sock == c.sock => {
            // SAFETY: fixed-size copies from the map value into scratch.
            unsafe {
                (*e).family = c.dest.family;
                (*e).port = c.dest.port;
                (*e).addr = c.dest.addr;
                (*e).unix_path_len = c.dest.unix_path_len;
                core::ptr::copy_nonoverlapping(c.unix_path.as_ptr(), unix_dst, UNIX_PATH_MAX);
            }
            bits |= flags::ADDR_FROM_KERNEL;
        }
        _ => {
            let src = Sockaddr::User(args.get::<M>(1));
            let addrlen = args.get::<M>(2) as u32 as usize;
            if parse(src, addrlen, e, unix_dst).is_none() {
                return;
            }
        }
    }
    finish(s, e, fd, ret, sock, bits);
}

/// LSM tier, a connect made through a syscall: keep the destination from
/// the kernel's copy of the address for [`on_exit`].
#[inline(always)]
pub fn stash(sock: u64, address: u64, addrlen: i32) {
    // SAFETY: plain data, every field written below or zero.
    let mut c: ConnectStash = unsafe { core::mem::zeroed() };
    c.sock = sock;
    let dst = c.unix_path.as_mut_ptr();
    if parse(
        Sockaddr::Kernel(address),
        addrlen as u32 as usize,
        &raw mut c.dest,
        dst,
    )
    .is_some()
    {
        let _ = CONNECT_STASH.insert(&bpf_get_current_pid_tgid(), &c, 0);
    }
}

/// LSM tier, a connect made by io_uring: no syscall exit will follow, so it
/// is reported here, permitted but with its result unknown.
#[inline(always)]
pub fn from_io_uring(sock: u64, address: u64, addrlen: i32) {
    let Some((s, e, unix_dst)) = begin() else {
        return;
    };
    let src = Sockaddr::Kernel(address);
    if parse(src, addrlen as u32 as usize, e, unix_dst).is_some() {
        let bits = flags::IO_URING | flags::ADDR_FROM_KERNEL;
        finish(s, e, -1, 0, sock, bits);
    }
}

/// Socket type and protocol (`sock` 0: unknown), result and flags; then
/// the record goes out, unless no loaded rule could match it
/// (`CONNECT_INTEREST`, from the destination's family and the result).
#[inline(always)]
fn finish(s: *mut Scratch, e: *mut ConnectEvent, fd: i32, ret: i64, sock: u64, bits: u32) {
    let drop = CONNECT_INTEREST.get(0).copied().unwrap_or(0);
    // SAFETY: scratch value of this CPU, its family written by the parse.
    if drop & connect_drop_bits(unsafe { (*e).family }, ret) != 0 {
        count_filtered(EventKind::Connect);
        return;
    }
    let (mut sock_type, mut protocol) = (0u16, 0u16);
    if sock != 0 {
        sock_type = kread::<i16>(sock, off!(socket_type)).unwrap_or(0) as u16;
        if off!(sock_protocol) != UNAVAILABLE as usize
            && let Ok(sk) = kptr(sock, off!(socket_sk))
        {
            protocol = kread(sk, off!(sock_protocol)).unwrap_or(0);
        }
    }
    // SAFETY: scratch value of this CPU.
    let unix_len = unsafe {
        (*e).ret = ret as i32;
        (*e).fd = fd;
        (*e).sock_type = sock_type;
        (*e).protocol = protocol;
        (*e).flags = bits;
        (*e).unix_path_len as usize
    };
    submit(s, TAIL + (unix_len & 127), EventKind::Connect);
}

#[inline(always)]
fn is_socket(file: u64) -> bool {
    const S_IFMT: u16 = 0o170000;
    const S_IFSOCK: u16 = 0o140000;
    kptr(file, off!(file_inode))
        .and_then(|inode| kread::<u16>(inode, off!(inode_mode)))
        .is_ok_and(|mode| mode & S_IFMT == S_IFSOCK)
}
