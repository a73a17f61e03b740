//! 32-bit syscalls (the int 0x80 gate works from 64-bit code): other numbers
//! and registers, the same events. A sensor that reads them as 64-bit calls
//! is blind to them and reports others that never happened.
use std::{fs, net::TcpListener, os::unix::ffi::OsStrExt as _};

use sensor_tests::{Sensor, text_bytes, unique_dir};

/// ia32 syscall numbers (arch/x86/entry/syscalls/syscall_32.tbl).
const IA32_OPEN: u32 = 5;
const IA32_CLOSE: u32 = 6;
const IA32_SOCKETCALL: u32 = 102;
const IA32_CONNECT: u32 = 362;
const SYS_CONNECT: u32 = 3;

/// Memory below 4 GiB, where 32-bit pointers can reach.
struct LowPage(*mut u8);

impl LowPage {
    fn new() -> Self {
        // SAFETY: a new anonymous private mapping takes no pointer from us
        // (addr NULL, fd -1) and replaces nothing; MAP_FAILED is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap MAP_32BIT");
        Self(p.cast())
    }

    /// Copies `bytes` to `offset` and returns their 32-bit address.
    fn put(&self, offset: usize, bytes: &[u8]) -> u32 {
        assert!(offset + bytes.len() <= 4096);
        // SAFETY: offset + len <= 4096 (asserted above), so the destination
        // lies inside the page this LowPage owns; `bytes` cannot overlap it.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.0.add(offset), bytes.len()) };
        (self.0 as usize + offset) as u32
    }
}

impl Drop for LowPage {
    fn drop(&mut self) {
        // SAFETY: unmaps the page mapped in new(), owned by this value and
        // not referenced once it is dropped.
        unsafe { libc::munmap(self.0.cast(), 4096) };
    }
}

/// One syscall through the ia32 gate. rbx cannot be named as an operand, so
/// it is swapped in and out; the gate clobbers r8-r11.
fn int80(nr: u32, a: u32, b: u32, c: u32) -> i32 {
    let ret: u64;
    // SAFETY: the asm restores rbx and declares every other register the
    // gate writes (rax, r8-r11); the kernel validates the syscall's
    // arguments, and the callers pass only addresses in a live LowPage.
    unsafe {
        std::arch::asm!(
            "xchg {a}, rbx",
            "int 0x80",
            "xchg {a}, rbx",
            a = inout(reg) a as u64 => _,
            inlateout("rax") nr as u64 => ret,
            in("rcx") b as u64,
            in("rdx") c as u64,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        );
    }
    ret as u32 as i32
}

fn sockaddr_in(port: u16) -> [u8; 16] {
    let mut sa = [0u8; 16];
    sa[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    sa[2..4].copy_from_slice(&port.to_be_bytes());
    sa[4..8].copy_from_slice(&[127, 0, 0, 1]);
    sa
}

fn tcp_socket() -> i32 {
    // SAFETY: socket(2) takes no pointers; the caller closes the fd.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0);
    fd
}

#[test]
fn ia32_open_is_reported_as_open() {
    let dir = unique_dir("compat");
    let file = dir.path().join("compat-open.txt");
    fs::write(&file, b"x").unwrap();
    let page = LowPage::new();
    let mut path = file.as_os_str().as_bytes().to_vec();
    path.push(0);
    let upath = page.put(0, &path);
    let mut sensor = Sensor::start(&["--hooks", "open", "--capture-opens", "all"]);
    let fd = int80(IA32_OPEN, upath, libc::O_RDONLY as u32, 0);
    assert!(fd >= 0, "ia32 open: {fd}");
    assert_eq!(int80(IA32_CLOSE, fd as u32, 0, 0), 0);

    let open = sensor.expect_one("open", "the int 0x80 open", |r| {
        text_bytes(&r["open"]["path"]) == file.as_os_str().as_bytes()
    });
    assert_eq!(open["open"]["syscall"], "open");
    assert_eq!(open["open"]["compat"], true);
    assert_eq!(open["open"]["fd"], fd);
    assert_eq!(open["open"]["access"], "read");
}

#[test]
fn ia32_connect_and_socketcall_connect_are_reported() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let page = LowPage::new();
    let addr = page.put(0, &sockaddr_in(port));
    let (direct, via_socketcall) = (tcp_socket(), tcp_socket());
    let args: Vec<u8> = [via_socketcall as u32, addr, 16]
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .collect();
    let uargs = page.put(64, &args);
    let mut sensor = Sensor::start(&["--hooks", "connect"]);
    assert_eq!(int80(IA32_CONNECT, direct as u32, addr, 16), 0);
    assert_eq!(int80(IA32_SOCKETCALL, SYS_CONNECT, uargs, 0), 0);

    for fd in [direct, via_socketcall] {
        let c = sensor.expect_one("connect", "an int 0x80 connect", |r| {
            r["process"]["pid"] == std::process::id() && r["connect"]["fd"] == fd
        });
        assert_eq!(c["connect"]["compat"], true, "{c}");
        assert_eq!(c["connect"]["port"], port);
        assert_eq!(c["connect"]["address"], "127.0.0.1");
        assert_eq!(c["connect"]["protocol"], "tcp");
        // SAFETY: close(2) of a socket made by tcp_socket(), closed once.
        unsafe { libc::close(fd) };
    }
}
