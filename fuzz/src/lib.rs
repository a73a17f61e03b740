//! What the fuzz targets share: the checks every record the sensor could
//! write must pass, and the recorded events the rule targets evaluate.
use std::{io, sync::LazyLock};

use sensor::{
    event::Record,
    output::{Encoder, Format, Sink},
};

/// Native JSON of `record`, as `sensor replay` and `--format native` write it.
pub fn native(record: &Record) -> Vec<u8> {
    let mut out = Vec::new();
    Encoder::plain()
        .encode(record, &mut out)
        .expect("a record encodes");
    out
}

/// Every format encodes `record`, and its native JSON reads back (as
/// `sensor replay` reads a capture) into a record with the same JSON: what
/// the sensor writes, it can replay.
pub fn check_record(record: &Record) {
    let json = native(record);
    let back: Record = serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "the sensor's own JSON does not read back: {e}\n{}",
            String::from_utf8_lossy(&json)
        )
    });
    let again = native(&back);
    assert!(
        again == json,
        "JSON changed on a round trip:\n{}\n{}",
        String::from_utf8_lossy(&json),
        String::from_utf8_lossy(&again)
    );
    let mut out = Vec::new();
    for format in [Format::Ecs, Format::Ocsf] {
        out.clear();
        Encoder::new(format, "fuzz")
            .encode(record, &mut out)
            .unwrap_or_else(|e| panic!("{format:?} does not encode it: {e}"));
    }
}

/// A sink that checks every record written to it (events and the alerts
/// they raise) with [`check_record`].
pub struct CheckingSink;

impl Sink for CheckingSink {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        check_record(record);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The recorded events of tests/fixtures/replay (Linux, Windows, macOS), for
/// evaluating rules on.
pub static RECORDED: LazyLock<Vec<Record>> = LazyLock::new(|| {
    [
        include_str!("../../tests/fixtures/replay/linux-variants.jsonl"),
        include_str!("../../tests/fixtures/replay/windows.jsonl"),
        include_str!("../../tests/fixtures/replay/macos.jsonl"),
    ]
    .iter()
    .flat_map(|file| file.lines())
    .filter(|l| !l.trim().is_empty())
    .map(|l| serde_json::from_str(l).expect("the replay fixtures are records"))
    .collect()
});

/// An open of `path` as the rules see one: read, written and created, or
/// refused (`shape` 0, 1, 2), by `sh` on the host.
pub fn open_of(path: &str, shape: usize) -> Record {
    let (access, flags, fd, error) = match shape % 3 {
        0 => ("read", &["O_RDONLY"][..], Some(3), None),
        1 => (
            "write",
            &["O_WRONLY", "O_CREAT", "O_TRUNC"][..],
            Some(3),
            None,
        ),
        _ => ("read", &["O_RDONLY"][..], None, Some("EACCES")),
    };
    let mut json = serde_json::json!({
        "schema": 1, "time": "2026-11-24T00:00:00Z", "boot_ns": 1, "kind": "open",
        "process": {"pid": 10, "tid": 10, "uid": 0, "gid": 0, "comm": "sh", "exe": "/bin/sh",
                    "args": ["sh"], "ancestors": []},
        "cgroup": {"id": 5}, "container": {"id": "host", "runtime": "host"},
        "open": {"syscall": "openat", "path": path, "path_source": "file", "access": access,
                 "flags": flags, "flags_raw": 0}
    });
    if let Some(fd) = fd {
        json["open"]["fd"] = fd.into();
    }
    if let Some(e) = error {
        json["open"]["error"] = e.into();
    }
    serde_json::from_value(json).expect("an open record")
}
