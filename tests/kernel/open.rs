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
    let mut sensor = Sensor::start(&["--hooks", "open", "--capture-opens", "all"]);
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
    let mut sensor = Sensor::start(&["--hooks", "open", "--capture-opens", "all"]);
    // SAFETY: raw syscalls whose pointers are `CString`s (NUL-terminated)
    // and a local `open_how`, all alive across the calls; each fd they
    // return is closed once below.
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
    let mut sensor = Sensor::start(&["--hooks", "open", "--capture-opens", "all"]);
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
    let mut sensor = Sensor::start(&["--hooks", "open", "--capture-opens", "all"]);
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
    let mut sensor = Sensor::start(&["--hooks", "open", "--capture-opens", "all"]);
    fs::write(&file, b"x").unwrap();
    let open = sensor.expect_one("open", "36 directories deep, long names", |r| {
        path_is(r, &file)
    });
    assert!(open["open"].get("path_truncated").is_none(), "{open}");
}

/// A rule pack of one rule on opens.
fn open_rule(condition: &str) -> String {
    format!(
        "pack: local\ntechnique: {{id: T1114, name: Email Collection, tactic: collection}}\nrules:\n  - id: local-open\n    title: t\n    severity: low\n    description: d\n    condition: {condition}\n"
    )
}

/// With rules loaded, the kernel keeps only the opens a rule could match,
/// counts the rest, and follows the rules when they reload.
#[test]
fn rules_decide_which_opens_reach_userspace() {
    let dir = unique_dir("interest");
    let rules = unique_dir("interest-rules");
    let rule_file = rules.path().join("local.yaml");
    fs::write(
        &rule_file,
        open_rule(
            "evt.type = open and open.success = true and (open.name endswith .pst or open.path contains /Maildir/)",
        ),
    )
    .unwrap();
    let plain = dir.path().join("plain.txt");
    let mail = dir.path().join("Maildir/cur/1");
    let pst = dir.path().join("export.pst");
    let secret = dir.path().join("key.secret");
    let missing = dir.path().join("missing");
    fs::create_dir_all(mail.parent().unwrap()).unwrap();
    for f in [&plain, &mail, &pst, &secret] {
        fs::write(f, b"x").unwrap();
    }
    let mut sensor = Sensor::start(&["--hooks", "open", "--rules", rules.path().to_str().unwrap()]);
    let me = std::process::id();
    let read = |p: &Path| drop(fs::File::open(p));
    let opened = |s: &Sensor, p: &Path, what: &str| {
        s.wait_for("open", what, |r| r["process"]["pid"] == me && path_is(r, p))
    };

    read(&plain);
    read(&missing);
    read(&mail);
    read(&pst);
    drop(fs::OpenOptions::new().write(true).open(&plain).unwrap());
    opened(&sensor, &mail, "a read in a Maildir");
    opened(&sensor, &pst, "a read of a .pst");
    let write = sensor.wait_for("open", "a write-open", |r| {
        r["process"]["pid"] == me && path_is(r, &plain)
    });
    assert_eq!(write["open"]["access"], "write");
    sensor.wait_metric("sensor_kernel_filtered_total{kind=\"open\"}", 2.0);

    // The next set asks for `.secret` files, failed opens included.
    fs::write(
        &rule_file,
        open_rule("evt.type = open and open.name endswith .secret"),
    )
    .unwrap();
    sensor.signal(libc::SIGHUP);
    sensor.wait_log("rules reloaded");
    read(&pst);
    read(&missing);
    read(&secret);
    opened(&sensor, &secret, "a read of a .secret");
    opened(&sensor, &missing, "a failed open");

    let log = sensor.log();
    let mut ours = |p: &Path, access: &str| {
        sensor
            .find("open", |r| {
                r["process"]["pid"] == me && path_is(r, p) && r["open"]["access"] == access
            })
            .len()
    };
    assert_eq!(ours(&plain, "read"), 0, "a read no rule matches");
    assert_eq!(
        ours(&pst, "read"),
        1,
        "the .pst read after the reload was kept"
    );
    assert_eq!(
        ours(&missing, "read"),
        1,
        "only the failed open after the reload was kept"
    );
    assert!(
        log.contains("opens captured") && log.contains("suffixes=[.secret]"),
        "{log}"
    );
}

/// A reload that swaps 40 path components for 40 others (more than the
/// kernel's name map holds at once) applies the new names and keeps the
/// sensor running.
#[test]
fn a_reload_swapping_many_names_applies_them() {
    let dir = unique_dir("names");
    let rules = unique_dir("names-rules");
    let rule_file = rules.path().join("local.yaml");
    let names =
        |prefix: &str| -> Vec<String> { (1..=40).map(|i| format!("{prefix}{i:02}")).collect() };
    let rule_of = |names: &[String]| {
        let list: Vec<String> = names.iter().map(|n| format!("/{n}/")).collect();
        open_rule(&format!(
            "evt.type = open and open.path contains ({})",
            list.join(", ")
        ))
    };
    let file_in = |name: &str| {
        let f = dir.path().join(name).join("x");
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(&f, b"x").unwrap();
        f
    };
    let (old, new) = (file_in("old07"), file_in("new33"));
    fs::write(&rule_file, rule_of(&names("old"))).unwrap();
    let mut sensor = Sensor::start(&["--hooks", "open", "--rules", rules.path().to_str().unwrap()]);
    let me = std::process::id();
    let read = |p: &Path| drop(fs::File::open(p).unwrap());
    read(&old);
    sensor.wait_for("open", "a read under an old name", |r| {
        r["process"]["pid"] == me && path_is(r, &old)
    });

    fs::write(&rule_file, rule_of(&names("new"))).unwrap();
    sensor.signal(libc::SIGHUP);
    sensor.wait_log("rules reloaded");
    read(&new);
    read(&old);
    sensor.wait_for("open", "a read under a new name", |r| {
        r["process"]["pid"] == me && path_is(r, &new)
    });
    let olds = sensor.find("open", |r| r["process"]["pid"] == me && path_is(r, &old));
    assert_eq!(olds.len(), 1, "the old name is no longer captured");
}
