//! Rule sets compiled from text and run over records built from JSON, as
//! `sensor replay` reads them.
use std::sync::Arc;

use super::{compile_files, engine::Engine};
use crate::event::Record;

const HEAD: &str = "pack: p\ntechnique: {id: T1, name: n, tactic: t}\n";

fn set(yaml: &str) -> Result<super::RuleSet, Vec<String>> {
    compile_files(vec![("r.yaml".into(), yaml.into())], "test")
        .map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

fn errors(yaml: &str) -> Vec<String> {
    set(yaml).err().expect("the set must be refused")
}

fn rule(id: &str, body: &str) -> String {
    format!("  - id: {id}\n    title: t\n    severity: high\n    description: d\n{body}")
}

/// An exec in container `cid` at `t` seconds.
fn exec(t: u64, cid: &str, args: &[&str]) -> Record {
    let json = serde_json::json!({
        "schema": 1, "time": "2026-11-24T00:00:00Z", "boot_ns": t * 1_000_000_000, "kind": "exec",
        "process": {"pid": 10, "tid": 10, "uid": 0, "gid": 0, "comm": args[0], "exe": format!("/usr/bin/{}", args[0]), "args": args,
                    "ancestors": [{"pid": 9, "start_ticks": 1, "exe": "/bin/bash", "args": ["bash", "-c", "x | sh"]}]},
        "cgroup": {"id": 5},
        "container": {"id": cid, "runtime": if cid == "host" { "host" } else { "docker" }, "image": "registry/app:1"},
        "exec": {"ppid": 9, "euid": 0, "egid": 0, "ns_pid": 1, "pid_ns": 1, "mnt_ns": 1, "start_boottime_ns": 1,
                 "path": format!("/usr/bin/{}", args[0]), "args": args}
    });
    serde_json::from_value(json).unwrap()
}

fn run(engine: &mut Engine, records: &[Record]) -> Vec<Record> {
    let mut out = Vec::new();
    for r in records {
        engine.check(r, &mut |a| out.push(a));
    }
    out
}

fn rule_of(alert: &Record) -> String {
    serde_json::to_value(alert).unwrap()["rule"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn macros_that_use_themselves_are_refused_even_unused() {
    let e = errors(&format!(
        "macros:\n  a: proc.name = x or a\n  b: c\n  c: b and proc.pid = 1\n{HEAD}"
    ));
    assert!(
        e.iter()
            .any(|m| m.starts_with("r.yaml:2:23: macro 'a' uses itself")),
        "{e:?}"
    );
    assert!(
        e.iter().any(|m| m.contains("uses itself (through")),
        "{e:?}"
    );
}

#[test]
fn an_error_in_a_macro_is_reported_once_where_it_is() {
    let yaml = format!(
        "macros:\n  bad: proc.cmdline regex 'a('\n{HEAD}rules:\n{}{}",
        rule("r1", "    condition: evt.type = exec and bad\n"),
        rule("r2", "    condition: evt.type = open and bad\n")
    );
    let e = errors(&yaml);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("r.yaml:2:27: bad regex 'a('"), "{e:?}");
}

#[test]
fn duplicate_ids_lists_and_macros_are_refused() {
    let yaml = format!(
        "lists:\n  l: [a]\nmacros:\n  m: proc.pid = 1\n{HEAD}rules:\n{}{}",
        rule("same", "    condition: evt.type = exec\n"),
        rule("same", "    condition: evt.type = exec\n")
    );
    let other = "lists:\n  l: [b]\nmacros:\n  m: proc.pid = 2\n";
    let e = compile_files(
        vec![("r.yaml".into(), yaml), ("o.yaml".into(), other.into())],
        "t",
    )
    .err()
    .unwrap()
    .0
    .iter()
    .map(ToString::to_string)
    .collect::<Vec<_>>();
    assert!(
        e.iter()
            .any(|m| m.contains("rule id 'same' is already used at r.yaml:")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("o.yaml:2:3: list 'l' is already defined at r.yaml:2:3")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("o.yaml:4:6: macro 'm' is already defined")),
        "{e:?}"
    );
}

#[test]
fn exceptions_suppress_and_rules_are_indexed_by_kind() {
    let yaml = format!(
        "{HEAD}rules:\n{}",
        rule(
            "tar",
            "    condition: evt.type = exec and proc.name in (tar, zip)\n    \
             exceptions:\n      - name: backup image\n        condition: container.image startswith registry/backup\n    \
             output: [proc.cmdline, proc.aname]\n"
        )
    );
    let set = Arc::new(set(&yaml).unwrap());
    assert_eq!(set.rules[0].pred.kinds(), crate::event::Kind::Exec.bit());
    let mut engine = Engine::new(set);
    let alerts = run(
        &mut engine,
        &[
            exec(1, "c1", &["tar", "czf", "/tmp/x.tgz", "/data"]),
            exec(2, "c1", &["ls"]),
        ],
    );
    assert_eq!(alerts.len(), 1);
    let a = serde_json::to_value(&alerts[0]).unwrap();
    assert_eq!(a["fields"]["proc.cmdline"], "tar czf /tmp/x.tgz /data");
    assert_eq!(a["fields"]["proc.aname"], serde_json::json!(["bash"]));
    assert_eq!(a["container"]["id"], "c1");

    let mut backup = exec(3, "c2", &["tar", "czf", "/b.tgz", "/data"]);
    if let crate::event::Body::Exec(e) = &mut backup.body {
        let mut c = (**e.container.as_ref().unwrap()).clone();
        c.meta.as_mut().unwrap().image = Some("registry/backup:2".into());
        e.container = Some(Arc::new(c));
    }
    assert!(run(&mut engine, &[backup]).is_empty());
}

/// What a process's conditions decided is reused for its next event only
/// while nothing they read has changed: each record below changes one
/// thing of the one before (sharing the rest, as attribution does) and
/// follows a record that matched.
#[test]
fn process_conditions_are_reused_only_for_the_same_process() {
    use crate::{
        event::Body,
        process::{Ancestor, Ancestry, ExecImage},
        text::Text,
    };
    let yaml = format!(
        "{HEAD}rules:\n{}",
        rule(
            "tar",
            "    condition: >-\n      evt.type = exec and proc.name = tar and proc.args = czf\n      \
             and proc.aname = bash and proc.uid = 0 and proc.pid = 10 and container.id = c1\n    \
             exceptions:\n      - name: backup image\n        condition: container.image startswith registry/backup\n"
        )
    );
    let set = Arc::new(set(&yaml).unwrap());
    assert!(set.memo_slots > 0);
    let mut engine = Engine::new(set);
    let base = exec(1, "c1", &["tar", "czf", "/tmp/x.tgz", "/data"]);
    let changed = |change: &dyn Fn(&mut crate::event::Event<crate::event::Exec>)| {
        let mut r = base.clone();
        let Body::Exec(e) = &mut r.body else {
            unreachable!()
        };
        change(e);
        r
    };
    let image = |args: &[&str]| {
        Arc::new(ExecImage::new(
            Text::from("/usr/bin/tar"),
            args.iter().map(|a| Text::from(*a)).collect(),
        ))
    };
    let variants = [
        changed(&|e| e.process.comm = Text::from("zip")),
        changed(&|e| e.process.uid = 1000),
        changed(&|e| e.process.pid = 11),
        changed(&|e| e.process.image = Some(image(&["tar", "xzf", "/tmp/x.tgz"]))),
        changed(&|e| {
            e.process.ancestors = Ancestry::from(vec![Ancestor {
                pid: 9,
                start_ticks: 1,
                image: image(&["sh"]),
            }])
        }),
        changed(&|e| {
            let mut c = (**e.container.as_ref().unwrap()).clone();
            c.meta.as_mut().unwrap().image = Some("registry/backup:2".into());
            e.container = Some(Arc::new(c));
        }),
        changed(&|e| {
            let mut c = (**e.container.as_ref().unwrap()).clone();
            c.id = "c2".into();
            e.container = Some(Arc::new(c));
        }),
    ];
    let mut records = vec![base.clone(), base.clone()];
    for v in variants {
        records.push(v);
        records.push(base.clone());
    }
    // The base record and its copies alert (9), no variant does.
    assert_eq!(run(&mut engine, &records).len(), 9);
}

/// Command lines are joined on first use per event: each event sees its
/// own, never the one before. Long `in` lists (hashed) and short ones
/// (scanned) match alike, and `evt.type` tests compare kinds.
#[test]
fn joined_command_lines_lists_and_kinds_follow_each_event() {
    let yaml = format!(
        "{HEAD}rules:
{}{}{}",
        rule(
            "cmdline",
            "    condition: evt.type = exec and proc.cmdline contains secret
    \
             output: [proc.cmdline]
"
        ),
        rule(
            "long-list",
            "    condition: evt.type in (open, exec) and not evt.type = open \
             and proc.name in (a1, a2, a3, a4, a5, a6, tar)
"
        ),
        rule(
            "parent",
            "    condition: evt.type != open and proc.pcmdline contains 'x | sh' \
             and proc.acmdline contains bash and proc.name in (ls, cat)
"
        )
    );
    let mut engine = Engine::new(Arc::new(set(&yaml).unwrap()));
    let alerts = run(
        &mut engine,
        &[
            exec(1, "c1", &["cp", "secret", "/tmp"]),
            exec(2, "c1", &["cp", "public", "/tmp"]),
            exec(3, "c1", &["tar", "cf", "x"]),
            exec(4, "c1", &["a7"]),
            exec(5, "c1", &["ls"]),
            open("write", &["O_WRONLY"], Some(3), None),
        ],
    );
    let fired: Vec<(String, u64)> = alerts
        .iter()
        .map(|a| (rule_of(a), a.boot_ns / 1_000_000_000))
        .collect();
    assert_eq!(
        fired,
        [
            ("cmdline".into(), 1),
            ("long-list".into(), 3),
            ("parent".into(), 5)
        ]
    );
    let a = serde_json::to_value(&alerts[0]).unwrap();
    assert_eq!(a["fields"]["proc.cmdline"], "cp secret /tmp");
}

#[test]
fn sequences_complete_per_container_within_the_window() {
    let yaml = format!(
        "{HEAD}rules:\n{}",
        rule(
            "chain",
            "    sequence:\n      by: container\n      within: 60s\n      steps:\n        \
             - {name: archive, condition: proc.name = tar}\n        \
             - {name: encrypt, condition: proc.name = openssl}\n"
        )
    );
    let mut engine = Engine::new(Arc::new(set(&yaml).unwrap()));
    let alerts = run(
        &mut engine,
        &[
            exec(1, "a", &["tar"]),
            exec(2, "b", &["openssl"]), // other container: no progress
            exec(3, "b", &["tar"]),
            exec(100, "a", &["openssl"]), // a's window expired
            exec(110, "b", &["openssl"]), // b's too
            exec(120, "a", &["tar"]),
            exec(121, "a", &["tar"]), // a newer first step restarts the window
            exec(180, "a", &["openssl"]),
        ],
    );
    assert_eq!(alerts.len(), 1);
    let a = serde_json::to_value(&alerts[0]).unwrap();
    assert_eq!(a["steps"], serde_json::json!(["archive", "encrypt"]));
    let times: Vec<u64> = a["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["boot_ns"].as_u64().unwrap() / 1_000_000_000)
        .collect();
    assert_eq!(times, [121, 180]);
    assert_eq!(engine.stats.sequence_expired, 2);
    assert_eq!(rule_of(&alerts[0]), "chain");
}

#[test]
fn sequence_state_is_capped_and_counted() {
    let yaml = format!(
        "{HEAD}rules:\n{}",
        rule(
            "chain",
            "    sequence:\n      by: container\n      within: 1h\n      steps:\n        \
             - {name: a, condition: proc.name = tar}\n        - {name: b, condition: proc.name = gpg}\n"
        )
    );
    let mut engine = Engine::new(Arc::new(set(&yaml).unwrap()));
    let cap = super::engine::SEQUENCE_STATE_CAP;
    let starts: Vec<Record> = (0..cap + 10)
        .map(|i| exec(1, &format!("c{i}"), &["tar"]))
        .collect();
    run(&mut engine, &starts);
    assert_eq!(engine.stats.sequence_state_full, 10);
}

/// An open record; `flags_raw` is 0 as in polled records.
fn open(access: &str, flags: &[&str], fd: Option<i32>, error: Option<&str>) -> Record {
    open_of("/tmp/x", access, flags, fd, error)
}

/// An open of `path`.
fn open_of(
    path: &str,
    access: &str,
    flags: &[&str],
    fd: Option<i32>,
    error: Option<&str>,
) -> Record {
    let mut json = serde_json::json!({
        "schema": 1, "time": "2026-11-24T00:00:00Z", "boot_ns": 1, "kind": "open",
        "process": {"pid": 10, "tid": 10, "uid": 0, "gid": 0, "comm": "sh", "exe": "/bin/sh", "args": ["sh"], "ancestors": []},
        "cgroup": {"id": 5}, "container": {"id": "host", "runtime": "host"},
        "open": {"syscall": "notify", "path": path, "path_source": "file", "access": access,
                 "flags": flags, "flags_raw": 0}
    });
    if let Some(fd) = fd {
        json["open"]["fd"] = fd.into();
    }
    if let Some(e) = error {
        json["open"]["error"] = e.into();
    }
    serde_json::from_value(json).unwrap()
}

#[test]
fn open_write_create_and_success_read_the_symbolic_fields() {
    let s = set(&format!(
        "{HEAD}rules:\n{}{}",
        rule(
            "w",
            "    condition: evt.type = open and open.write = true and open.success = true\n"
        ),
        rule(
            "c",
            "    condition: evt.type = open and open.create = true\n"
        ),
    ))
    .unwrap();
    let mut engine = Engine::new(Arc::new(s));
    let fired = |engine: &mut Engine, r: Record| -> Vec<String> {
        run(engine, &[r]).iter().map(rule_of).collect()
    };
    // A polled creation: no fd, no raw flags.
    assert_eq!(
        fired(
            &mut engine,
            open("write", &["O_WRONLY", "O_CREAT"], None, None)
        ),
        ["w", "c"]
    );
    assert_eq!(
        fired(
            &mut engine,
            open("read", &["O_RDONLY", "O_TRUNC"], Some(3), None)
        ),
        ["w"]
    );
    assert!(fired(&mut engine, open("read", &["O_RDONLY"], Some(3), None)).is_empty());
    assert_eq!(
        fired(
            &mut engine,
            open("write", &["O_WRONLY", "O_CREAT"], None, Some("EACCES"))
        ),
        ["c"]
    );
}

/// The engine passes over opens that the rules' open filter leaves out,
/// without evaluating them: sound only if no rule or step could match one.
/// Every shipped condition that can match an open is tried on paths its
/// packs name and on system paths, read, written and failed.
#[test]
fn opens_passed_over_are_opens_no_shipped_condition_matches() {
    use super::{
        RuleSource,
        fields::Prepared,
        interest::{KernelFilter as _, OpenFilter},
    };
    let set = RuleSource::Builtin.load().unwrap();
    let filter = OpenFilter::of_rules(&set);
    let conditions: Vec<_> = set.conditions().collect();
    let paths = [
        "/var/mail/root",
        "/var/spool/mail/alice",
        "/home/a/Maildir/cur/1",
        "/home/a/Maildir",
        "/home/a/.thunderbird/x/Mail/Local Folders/Inbox",
        "/home/a/.local/share/evolution/mail/local/x",
        "/root/Library/Mail/V10/x.emlx",
        "/srv/export/Outlook.PST",
        "/srv/export/archive.ost",
        "/srv/export/box.mbox",
        "/tmp/stage/data.tar.gz",
        "/tmp/x.7z",
        "/dev/shm/x.zip",
        "/var/run/docker.sock",
        "/run/containerd/containerd.sock",
        "/etc/passwd",
        "/etc/shadow",
        "/root/.ssh/id_rsa",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/proc/1/stat",
        "relative/mail/x",
        "mail",
    ];
    type Shape<'a> = (&'a str, &'a [&'a str], Option<i32>, Option<&'a str>);
    let shapes: [Shape; 4] = [
        ("read", &["O_RDONLY"], Some(3), None),
        ("write", &["O_WRONLY", "O_CREAT", "O_TRUNC"], Some(3), None),
        ("read", &["O_RDONLY"], None, Some("EACCES")),
        ("read_write", &["O_RDWR"], Some(3), None),
    ];
    let mut prepared = Prepared::new(set.memo_slots);
    let (mut matched, mut passed_over) = (0, 0);
    for path in paths {
        for (access, flags, fd, error) in shapes {
            let rec = open_of(path, access, flags, fd, error);
            let crate::event::Body::Open(e) = &rec.body else {
                unreachable!()
            };
            prepared.reset(rec.kind().bit(), &rec);
            let matches = conditions.iter().any(|p| p.eval(&rec, &prepared));
            let kept = filter.keeps(&e.data.open);
            assert!(
                kept || !matches,
                "{path} {access}: matched but passed over ({filter})"
            );
            matched += usize::from(matches);
            passed_over += usize::from(!kept);
        }
    }
    // Both sides are exercised: some opens match, some are passed over.
    assert!(matched >= 8, "{matched}");
    assert!(passed_over >= 8, "{passed_over}");

    // The engine counts what it passed over and still alerts on the rest.
    let mut engine = Engine::new(Arc::new(set));
    let quiet = run(
        &mut engine,
        &[open_of("/etc/passwd", "read", &["O_RDONLY"], Some(3), None)],
    );
    assert!(quiet.is_empty());
    assert_eq!(engine.stats.opens_passed_over, 1);
    let mail = run(
        &mut engine,
        &[open_of(
            "/var/mail/root",
            "read",
            &["O_RDONLY"],
            Some(3),
            None,
        )],
    );
    assert!(!mail.is_empty(), "a mailbox read by sh must alert");
    assert_eq!(engine.stats.opens_passed_over, 1);
}

/// Conditions nested past the limits are refused where they pass it,
/// however deep the text goes: the old recursive parser overflowed the
/// stack (and took a running sensor down on SIGHUP) from ~7,500 levels.
#[test]
fn deep_nesting_is_refused_with_its_position_not_a_stack_overflow() {
    use super::{
        compile::{MAX_DEPTH, MAX_NODES},
        condition::MAX_NESTING,
    };
    let one = |cond: String| {
        format!(
            "{HEAD}rules:\n{}",
            rule("r", &format!("    condition: '{cond}'\n"))
        )
    };
    let deep = 100_000;
    for cond in [
        format!("{}proc.name = x{}", "(".repeat(deep), ")".repeat(deep)),
        format!("{}proc.name = x", "not ".repeat(deep)),
        format!("{}proc.name = x", "not (".repeat(deep)),
    ] {
        let e = errors(&one(cond));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains(&format!("nest deeper than {MAX_NESTING} levels")),
            "{e:?}"
        );
    }
    // The position is the first '(' past the limit: line 8, after the
    // quote that opens the condition at column 16.
    let e = errors(&one(format!(
        "{}proc.name = x{}",
        "(".repeat(MAX_NESTING + 1),
        ")".repeat(MAX_NESTING + 1)
    )));
    assert!(
        e[0].starts_with(&format!("r.yaml:8:{}:", 17 + MAX_NESTING)),
        "{e:?}"
    );
    assert!(
        set(&one(format!(
            "{}proc.name = x{}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        )))
        .is_ok()
    );

    // A chain of macros stacks nesting that each text keeps within limits.
    let chain = |n: usize| {
        let macros: String = (0..n)
            .map(|i| {
                let next = if i + 1 == n {
                    "proc.name = x".into()
                } else {
                    format!("m{}", i + 1)
                };
                format!("  m{i}: not {next}\n")
            })
            .collect();
        format!("macros:\n{macros}{}", one("m0".into()))
    };
    // Each macro deep enough in the chain is refused on its own.
    let e = errors(&chain(1_000));
    assert_eq!(e.len(), 1_000 - MAX_DEPTH / 2 + 1, "{:?}", &e[..3]);
    assert!(
        e[0].contains(&format!("deeper than {MAX_DEPTH} levels once macros are expanded (through m0 -> m1 -> m2 -> ... ->")),
        "{e:?}"
    );
    assert!(set(&chain(MAX_DEPTH / 3)).is_ok());

    // Macros that each use the next one twice double at every step.
    let macros: String = (0..20)
        .map(|i| format!("  m{i}: m{} or not m{}\n", i + 1, i + 1))
        .collect();
    let e = errors(&format!(
        "macros:\n{macros}  m20: proc.name = x\n{}",
        one("m0".into())
    ));
    assert!(
        e.iter()
            .all(|m| m.contains(&format!("grows past {MAX_NODES} tests"))),
        "{:?}",
        &e[..3]
    );
}
