use std::{ffi::CString, fs, os::unix::ffi::OsStrExt as _, path::Path, process::Command};

use sensor_tests::{Sensor, text_bytes, unique_dir};

fn path_is(r: &serde_json::Value, p: &Path) -> bool {
    text_bytes(&r["open"]["path"]) == p.as_os_str().as_bytes()
}

#[test]
fn relative_openat_reports_absolute_path() {
    let dir = unique_dir("relopen");
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    fs::write(sub.join("data.txt"), b"x").unwrap();
    let mut sensor = Sensor::start(&["--hooks", "open"]);
    let status = Command::new("cat")
        .arg("data.txt")
        .arg("missing.txt")
        .current_dir(&sub)
        .output()
        .expect("cat");
    assert!(!status.status.success(), "cat of a missing file must fail");

    let ok = sensor.expect_one("open", "relative open of data.txt", |r| {
        path_is(r, &sub.join("data.txt"))
    });
    assert_eq!(ok["open"]["path_source"], "file");
    assert_eq!(ok["open"]["syscall"], "openat");
    assert_eq!(ok["open"]["access"], "read");
    assert!(ok["open"]["fd"].as_i64().unwrap() >= 0);
    assert_eq!(ok["process"]["comm"], "cat");

    let missing = sensor.expect_one("open", "failed relative open", |r| {
        path_is(r, &sub.join("missing.txt"))
    });
    assert_eq!(missing["open"]["path_source"], "joined");
    assert_eq!(missing["open"]["error"], "ENOENT");
}

#[test]
fn raw_open_openat2_and_creat_syscalls_are_seen() {
    let dir = unique_dir("rawopen");
    let file = dir.path().join("raw.txt");
    fs::write(&file, b"x").unwrap();
    let c = CString::new(file.as_os_str().as_bytes()).unwrap();
    let created = dir.path().join("created.txt");
    let c_created = CString::new(created.as_os_str().as_bytes()).unwrap();
    let mut sensor = Sensor::start(&["--hooks", "open"]);
    // SAFETY: raw syscalls with valid NUL-terminated paths; fds closed below.
    unsafe {
        let fd = libc::syscall(libc::SYS_open, c.as_ptr(), libc::O_RDONLY) as i32;
        assert!(fd >= 0);
        libc::close(fd);
        // struct open_how { u64 flags; u64 mode; u64 resolve; }
        let how: [u64; 3] = [libc::O_RDONLY as u64, 0, 0];
        let fd = libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            c.as_ptr(),
            how.as_ptr(),
            size_of_val(&how),
        ) as i32;
        assert!(fd >= 0, "openat2: {}", std::io::Error::last_os_error());
        libc::close(fd);
        let fd = libc::syscall(libc::SYS_creat, c_created.as_ptr(), 0o640) as i32;
        assert!(fd >= 0);
        libc::close(fd);
    }
    let me = std::process::id();
    let opens = sensor.find("open", |r| r["process"]["pid"] == me && path_is(r, &file));
    let syscalls: Vec<&str> = opens
        .iter()
        .map(|r| r["open"]["syscall"].as_str().unwrap())
        .collect();
    assert!(
        syscalls.contains(&"open") && syscalls.contains(&"openat2"),
        "{opens:?}"
    );
    let creat = sensor.expect_one("open", "creat", |r| path_is(r, &created));
    assert_eq!(creat["open"]["syscall"], "creat");
    assert_eq!(creat["open"]["access"], "write");
    assert_eq!(creat["open"]["mode"], "0640");
}

#[test]
fn write_open_differs_from_read_open() {
    let dir = unique_dir("rw");
    let file = dir.path().join("out.log");
    let mut sensor = Sensor::start(&["--hooks", "open"]);
    fs::write(&file, b"written").unwrap();
    let _ = fs::read(&file).unwrap();
    let opens = sensor.find("open", |r| path_is(r, &file));
    let write = opens
        .iter()
        .find(|r| r["open"]["access"] == "write")
        .expect("write open");
    let flags: Vec<&str> = write["open"]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        flags.contains(&"O_CREAT") && flags.contains(&"O_TRUNC"),
        "{write}"
    );
    let read = opens
        .iter()
        .find(|r| r["open"]["access"] == "read")
        .expect("read open");
    assert!(
        !read["open"]["flags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "O_CREAT")
    );
    assert_eq!(read["open"]["ino"], write["open"]["ino"]);
}

#[test]
fn odd_file_names_round_trip() {
    let dir = unique_dir("names");
    let name = std::ffi::OsStr::from_bytes(b"evil\nname \xff\xfe.txt");
    let file = dir.path().join(name);
    let mut sensor = Sensor::start(&["--hooks", "open"]);
    fs::write(&file, b"x").unwrap();
    let open = sensor.expect_one("open", "non-UTF-8 name with a newline", |r| {
        path_is(r, &file)
    });
    assert!(open["open"]["path"]["base64"].is_string(), "{open}");
}

#[test]
fn deep_path_is_resolved() {
    let dir = unique_dir("deep");
    let mut deep = dir.path().to_path_buf();
    for i in 0..30 {
        deep.push(format!("d{i}"));
    }
    // Names around the inline-name size (DNAME_INLINE_LEN 32/40) and far
    // past it take both the inline and the out-of-line copy.
    for len in [31, 32, 39, 40, 41, 200] {
        deep.push("n".repeat(len));
    }
    fs::create_dir_all(&deep).unwrap();
    let file = deep.join("leaf");
    let mut sensor = Sensor::start(&["--hooks", "open"]);
    fs::write(&file, b"x").unwrap();
    let open = sensor.expect_one("open", "36 directories deep, long names", |r| {
        path_is(r, &file)
    });
    assert!(open["open"].get("path_truncated").is_none(), "{open}");
}
