//! Userspace cost per event: decode a ring record and write it as a JSON
//! line, attribute it, and run the shipped rules over it: the work the
//! collector does for every event.
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::sync::Arc;

use sensor::{
    clock::BootClock,
    container::{Attributor, cgroups::CgroupIndex, metadata::StateDirs},
    decode::{
        decode,
        fixture::{exec_payload, record},
    },
    enrich::Enricher,
    output::{Encoder, Format, Outputs, Sink},
    process::{ExecImage, ProcessInfo, ProcessTable},
    rules::{RuleSource, engine::Engine},
};
use sensor_common::{ConnectEvent, EventKind, OpenEvent, OpenSyscall, flags};

fn open_record() -> Vec<u8> {
    open_at(b"bench-open\0sensor-bench\0tmp\0", libc::O_RDONLY)
}

/// An open of the path given as kernel components (leaf first).
fn open_at(tail: &[u8], access: i32) -> Vec<u8> {
    let e = OpenEvent {
        syscall: OpenSyscall::Openat as u32,
        open_flags: (access | libc::O_CLOEXEC) as u32,
        mode: 0,
        ret: 3,
        ino: 1234,
        flags: flags::PATH_RESOLVED | flags::PATH_COMPONENTS,
        path_len: tail.len() as u32,
        rel_len: 0,
        _pad: 0,
    };
    record(EventKind::Open, &e, tail)
}

fn exec_record() -> Vec<u8> {
    exec_of(
        b"curl\0bin\0usr\0",
        b"curl\0-fsSL\0https://example.invalid/install.sh\0-o\0/tmp/x\0",
    )
}

fn exec_of(path: &[u8], argv: &[u8]) -> Vec<u8> {
    let mut tail = path.to_vec();
    tail.extend_from_slice(argv);
    let e = exec_payload(path.len(), argv.len(), flags::PATH_COMPONENTS);
    record(EventKind::Exec, &e, &tail)
}

fn connect_record(addr: [u8; 4], port: u16) -> Vec<u8> {
    let mut a = [0u8; 16];
    a[..4].copy_from_slice(&addr);
    let e = ConnectEvent {
        ret: 0,
        fd: 3,
        family: libc::AF_INET as u16,
        port,
        sock_type: libc::SOCK_STREAM as u16,
        protocol: libc::IPPROTO_TCP as u16,
        addr: a,
        unix_path_len: 0,
        flags: 0,
    };
    record(EventKind::Connect, &e, &[])
}

/// A workload's mix after attribution, in a container: mostly read-only
/// opens (libraries, config), some writes, execs of build tools, a connect
/// to a database. Nothing in it alerts, as on a healthy node.
fn workload_mix(enricher: &mut Enricher, clock: &BootClock) -> Vec<sensor::event::Record> {
    workload_records()
        .iter()
        .map(|r| {
            let mut rec = decode(r, clock).unwrap();
            enricher.enrich(&mut rec);
            rec
        })
        .collect()
}

/// The mix of `workload_mix` as the ring delivers it.
fn workload_records() -> Vec<Vec<u8>> {
    let mut raw = Vec::new();
    for _ in 0..7 {
        raw.push(open_at(
            b"libc.so.6\0x86_64-linux-gnu\0lib\0usr\0",
            libc::O_RDONLY,
        ));
    }
    raw.push(open_at(
        b"main.o\0build\0src\0",
        libc::O_WRONLY | libc::O_CREAT,
    ));
    raw.push(exec_of(
        b"gcc-12\0bin\0usr\0",
        b"gcc\0-c\0-O2\0main.c\0-o\0build/main.o\0",
    ));
    raw.push(connect_record([10, 0, 0, 5], 5432));
    raw
}

/// A warm enricher: the acting process (pid 10) five levels deep in a
/// Kubernetes container (containerd) whose cgroup (id 42) is indexed and
/// whose runtime state (name, image, pod, a bind mount) is read from disk,
/// as on a node. The directory must outlive the enricher.
fn warm_enricher() -> (Enricher, tempfile::TempDir) {
    let id = "ab".repeat(32);
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    std::fs::create_dir_all(dir.path().join("runc").join(&id)).unwrap();
    std::fs::create_dir_all(&bundle).unwrap();
    let state = serde_json::json!({"config": {"labels": [format!("bundle={}", bundle.display())]}});
    std::fs::write(
        dir.path().join("runc").join(&id).join("state.json"),
        state.to_string(),
    )
    .unwrap();
    let config = serde_json::json!({
        "annotations": {
            "io.kubernetes.cri.container-name": "api",
            "io.kubernetes.cri.image-name": "registry.example/shop/api:1.4.2",
            "io.kubernetes.cri.sandbox-name": "api-7d9f8c6b5-x2x4q",
            "io.kubernetes.cri.sandbox-namespace": "shop"
        },
        "mounts": [{"type": "bind", "source": "/var/lib/kubelet/pods/p/volumes/data",
                    "destination": "/data", "options": ["rbind", "ro"]}],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "mount"}]}
    });
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();

    let mut index = CgroupIndex::default();
    index.insert(
        0,
        42,
        &format!(
            "/kubepods.slice/kubepods-burstable.slice/\
             kubepods-burstable-pod0f1e2d3c_4b5a_6978_8a9b_0c1d2e3f4a5b.slice/\
             cri-containerd-{id}.scope"
        ),
    );
    let dirs = StateDirs {
        runc: vec![dir.path().join("runc").display().to_string()],
        docker: vec![],
        storage: vec![],
        docker_sockets: vec![],
    };
    let mut containers = Attributor::with_state_dirs(index, dirs);
    let container = containers.resolve(42, 0, false);
    assert!(
        container
            .meta
            .as_ref()
            .is_some_and(|m| m.pod_name.is_some()),
        "the bench container's runtime state must be found: {container:?}"
    );
    let mut table = ProcessTable::new(1024);
    for pid in 5..=10u32 {
        let image = Arc::new(ExecImage::new(
            "/bin/sh".into(),
            vec!["sh".into(), "-c".into(), "tar czf /tmp/x.tgz /data".into()],
        ));
        table.insert(ProcessInfo {
            pid,
            ppid: pid - 1,
            start_ticks: 100,
            image,
            container: Some(container.clone()),
        });
    }
    (Enricher::with_state(table, containers), dir)
}

fn bench(c: &mut Criterion) {
    let clock = BootClock::new();
    let mut group = c.benchmark_group("decode_and_write_json");
    group.throughput(Throughput::Elements(1));
    for (name, raw) in [("open", open_record()), ("exec", exec_record())] {
        let mut sink = Outputs::writer(
            Box::new(std::io::sink()),
            Encoder::new(Format::Native, "node-1"),
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                let rec = decode(black_box(&raw), &clock).unwrap();
                sink.write(&rec).unwrap();
            })
        });
        sink.flush().unwrap();
    }
    group.finish();

    // Encoding alone, by format: the native schema is the baseline; ECS and
    // OCSF build a document per record.
    let (mut enricher, _state) = warm_enricher();
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    for (kind, raw) in [("open", open_record()), ("exec", exec_record())] {
        let mut record = decode(&raw, &clock).unwrap();
        enricher.enrich(&mut record);
        for format in [Format::Native, Format::Ecs, Format::Ocsf] {
            let mut encoder = Encoder::new(format, "node-1");
            let mut out = Vec::with_capacity(8192);
            group.bench_function(format!("{kind}_{format:?}").to_lowercase(), |b| {
                b.iter(|| {
                    out.clear();
                    encoder.encode(black_box(&record), &mut out).unwrap();
                })
            });
        }
    }
    group.finish();

    // Attribution alone, steady state (issue 3 target: <= 1 us per event).
    let (mut enricher, _state) = warm_enricher();
    let record = decode(&open_record(), &clock).unwrap();
    let mut group = c.benchmark_group("enrich");
    group.throughput(Throughput::Elements(1));
    group.bench_function("open_in_container_depth_5", |b| {
        b.iter_batched_ref(
            || record.clone(),
            |r| {
                black_box(enricher.enrich(r));
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// The shipped rules over an attributed event mix (issue 4 target: at
/// least 1M events/s per core), and the baseline of the same loop with no
/// rule set loaded, measured in the same run.
fn bench_rules(c: &mut Criterion) {
    let clock = BootClock::new();
    let (mut enricher, _state) = warm_enricher();
    let mix = workload_mix(&mut enricher, &clock);
    let builtin = Arc::new(RuleSource::Builtin.load().expect("built-in rules"));
    let empty = Arc::new(sensor::rules::compile_files(Vec::new(), "none").unwrap());
    let mut alerts = 0usize;
    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(mix.len() as u64));
    for (name, set) in [
        ("no_rules_baseline", empty),
        ("builtin_rules_workload_mix", builtin.clone()),
    ] {
        let mut engine = Engine::new(set);
        group.bench_function(name, |b| {
            b.iter(|| {
                for rec in &mix {
                    engine.check(black_box(rec), &mut |_| alerts += 1);
                }
            })
        });
    }
    // A build writing its objects under /tmp: every write is the first
    // step of the staging sequences, the hottest path of the rate bench.
    let writes: Vec<_> = (0..mix.len())
        .map(|_| {
            let raw = open_at(b"main.o\0build\0tmp\0", libc::O_WRONLY | libc::O_CREAT);
            let mut rec = decode(&raw, &clock).unwrap();
            enricher.enrich(&mut rec);
            rec
        })
        .collect();
    let mut engine = Engine::new(builtin);
    group.bench_function("builtin_rules_staged_writes", |b| {
        b.iter(|| {
            for rec in &writes {
                engine.check(black_box(rec), &mut |_| alerts += 1);
            }
        })
    });
    group.finish();
    assert_eq!(alerts, 0, "the benign mix must not alert");
}

/// Everything the collector does for a record, in its order: decode,
/// attribute, write the native JSON line, run the shipped rules (issue 8
/// target: at least 1M events/s per core).
fn bench_pipeline(c: &mut Criterion) {
    let clock = BootClock::new();
    let (mut enricher, _state) = warm_enricher();
    let raw = workload_records();
    let mut engine = Engine::new(Arc::new(
        RuleSource::Builtin.load().expect("built-in rules"),
    ));
    let mut sink = Outputs::writer(
        Box::new(std::io::sink()),
        Encoder::new(Format::Native, "node-1"),
    );
    let mut alerts = 0usize;
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(raw.len() as u64));
    group.bench_function("workload_mix", |b| {
        b.iter(|| {
            for r in &raw {
                let mut rec = decode(black_box(r), &clock).unwrap();
                enricher.enrich(&mut rec);
                sink.write(&rec).unwrap();
                engine.check(&rec, &mut |_| alerts += 1);
            }
        })
    });
    // The definition (decode + attribute + rules): the same loop
    // without writing the record.
    group.bench_function("workload_mix_without_output", |b| {
        b.iter(|| {
            for r in &raw {
                let mut rec = decode(black_box(r), &clock).unwrap();
                enricher.enrich(&mut rec);
                engine.check(&rec, &mut |_| alerts += 1);
            }
        })
    });
    group.finish();
    sink.flush().unwrap();
    assert_eq!(alerts, 0, "the benign mix must not alert");
}

criterion_group!(benches, bench, bench_rules, bench_pipeline);
criterion_main!(benches);
