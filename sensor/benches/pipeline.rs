//! Userspace cost per event: decode a ring record and write it as a JSON
//! line, the work the collector does for every event.
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
    output::{JsonLines, Sink},
    process::{ExecImage, ProcessInfo, ProcessTable},
};
use sensor_common::{EventKind, OpenEvent, OpenSyscall, flags};

fn open_record() -> Vec<u8> {
    let tail = b"bench-open\0sensor-bench\0tmp\0";
    let e = OpenEvent {
        syscall: OpenSyscall::Openat as u32,
        open_flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u32,
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
    let path = b"curl\0bin\0usr\0";
    let argv = b"curl\0-fsSL\0https://example.invalid/install.sh\0-o\0/tmp/x\0";
    let mut tail = path.to_vec();
    tail.extend_from_slice(argv);
    let e = exec_payload(path.len(), argv.len(), flags::PATH_COMPONENTS);
    record(EventKind::Exec, &e, &tail)
}

/// A warm enricher: the acting process (pid 10) five levels deep in a
/// Docker container whose cgroup (id 42) is indexed and cached.
fn warm_enricher() -> Enricher {
    let mut index = CgroupIndex::default();
    index.insert(
        0,
        42,
        &format!("/system.slice/docker-{}.scope", "ab".repeat(32)),
    );
    let dirs = StateDirs {
        runc: vec!["/nonexistent".into()],
        docker: vec![],
        storage: vec![],
        docker_sockets: vec![],
    };
    let mut containers = Attributor::with_state_dirs(index, dirs);
    let container = containers.resolve(42, 0, false);
    let mut table = ProcessTable::new(1024);
    for pid in 5..=10u32 {
        let image = Arc::new(ExecImage {
            exe: "/bin/sh".into(),
            args: vec!["sh".into(), "-c".into(), "tar czf /tmp/x.tgz /data".into()],
        });
        table.insert(ProcessInfo {
            pid,
            ppid: pid - 1,
            start_ticks: 100,
            image,
            container: Some(container.clone()),
        });
    }
    Enricher::with_state(table, containers)
}

fn bench(c: &mut Criterion) {
    let clock = BootClock::new();
    let mut group = c.benchmark_group("decode_and_write_json");
    group.throughput(Throughput::Elements(1));
    for (name, raw) in [("open", open_record()), ("exec", exec_record())] {
        let mut sink = JsonLines::new(std::io::sink());
        group.bench_function(name, |b| {
            b.iter(|| {
                let rec = decode(black_box(&raw), &clock).unwrap();
                sink.write(&rec).unwrap();
            })
        });
        sink.flush().unwrap();
    }
    group.finish();

    // Attribution alone, steady state (issue 3 target: <= 1 us per event).
    let mut enricher = warm_enricher();
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

criterion_group!(benches, bench);
criterion_main!(benches);
