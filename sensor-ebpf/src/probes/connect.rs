//! Outbound connects (called from sys_exit): IPv4, IPv6 (v4-mapped included),
//! AF_UNIX paths (abstract names too), TCP and UDP.
//!
//! The address is the caller's sockaddr, read at exit. Socket type and
//! protocol come from the kernel socket behind the fd.
use aya_ebpf::helpers::generated::bpf_probe_read_user;
use sensor_common::{ConnectEvent, EventKind, UNAVAILABLE, UNIX_PATH_MAX};

use super::syscall::Args;
use crate::{
    globals::off,
    helpers::{
        emit::{HEADER, count_read_error, header, payload, scratch, submit},
        read::{Mem, kptr, kread, uread},
        task,
    },
};

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const EBADF: i64 = 9;
const ENOTSOCK: i64 = 88;
const TAIL: usize = HEADER + core::mem::size_of::<ConnectEvent>();

// A BPF function of its own, whatever the inliner would do: sys_exit's
// frame stays small, and the verifier's 512-byte limit applies to the
// frames of a call chain added up.
#[inline(never)]
pub fn on_exit<M: Mem>(args: &Args, ret: i64) {
    let fd = args.get::<M>(0) as i32;
    let uaddr = args.get::<M>(1);
    let addrlen = args.get::<M>(2) as u32 as usize;
    let Ok(family) = uread::<u16>(uaddr) else {
        return; // EFAULT: nothing was connected to
    };
    let current = M::current();
    let Some(s) = scratch() else {
        count_read_error(EventKind::Connect);
        return;
    };
    header::<M>(s, EventKind::Connect, None);
    let e = payload::<ConnectEvent>(s);
    let mut port = 0u16;
    let mut addr = [0u8; 16];
    let mut unix_len = 0usize;
    match family {
        AF_INET => {
            port = u16::from_be(uread(uaddr + 2).unwrap_or(0));
            let v4: [u8; 4] = uread(uaddr + 4).unwrap_or([0; 4]);
            addr[..4].copy_from_slice(&v4);
        }
        AF_INET6 => {
            port = u16::from_be(uread(uaddr + 2).unwrap_or(0));
            addr = uread(uaddr + 8).unwrap_or([0; 16]);
        }
        AF_UNIX if addrlen > 2 => {
            let mut want = addrlen - 2;
            if want > UNIX_PATH_MAX {
                want = UNIX_PATH_MAX;
            }
            // SAFETY: destination inside scratch, size bounded above.
            let r = unsafe {
                bpf_probe_read_user(
                    (*s).buf.as_mut_ptr().add(TAIL).cast(),
                    want as u32,
                    (uaddr + 2) as *const _,
                )
            };
            if r == 0 {
                unix_len = want;
            }
        }
        _ => {}
    }
    let (mut sock_type, mut protocol) = (0u16, 0u16);
    // private_data is a `struct socket` only on a socket inode; the fd may
    // name anything when connect failed early (or was swapped since).
    if ret != -EBADF
        && ret != -ENOTSOCK
        && let Ok(file) = task::fd_file::<M>(current, fd as i64)
        && is_socket(file)
        && let Ok(sock) = kptr(file, off!(file_private_data))
    {
        sock_type = kread::<i16>(sock, off!(socket_type)).unwrap_or(0) as u16;
        if off!(sock_protocol) != UNAVAILABLE as usize
            && let Ok(sk) = kptr(sock, off!(socket_sk))
        {
            protocol = kread(sk, off!(sock_protocol)).unwrap_or(0);
        }
    }
    // SAFETY: scratch value of this CPU.
    unsafe {
        (*e).ret = ret as i32;
        (*e).fd = fd;
        (*e).family = family;
        (*e).port = port;
        (*e).sock_type = sock_type;
        (*e).protocol = protocol;
        (*e).addr = addr;
        (*e).unix_path_len = unix_len as u32;
        (*e).flags = args.flags();
    }
    submit(s, TAIL + unix_len, EventKind::Connect);
}

#[inline(always)]
fn is_socket(file: u64) -> bool {
    const S_IFMT: u16 = 0o170000;
    const S_IFSOCK: u16 = 0o140000;
    kptr(file, off!(file_inode))
        .and_then(|inode| kread::<u16>(inode, off!(inode_mode)))
        .is_ok_and(|mode| mode & S_IFMT == S_IFSOCK)
}
