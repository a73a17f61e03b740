//! Attribution of events to real runc containers, one per cgroup naming
//! style, and to the host.
use sensor_tests::{RuncContainer, Sensor, container_id, text_bytes};
use serde_json::Value;

const POD_UID: &str = "6f0a2d8e-1b4c-4e7a-9c3d-2b1a0f9e8d7c";

struct Case {
    cgroups_path: String,
    runtime: &'static str,
    pod_uid: Option<&'static str>,
    id: String,
}

fn cases() -> Vec<Case> {
    let pod_ = POD_UID.replace('-', "_");
    let mut out = Vec::new();
    for (tag, runtime, pod_uid, path) in [
        (
            1u8,
            "docker",
            None,
            "/system.slice/docker-{}.scope".to_owned(),
        ),
        (
            2,
            "containerd",
            Some(POD_UID),
            format!(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{pod_}.slice/cri-containerd-{{}}.scope"
            ),
        ),
        (
            3,
            "cri",
            Some(POD_UID),
            format!("/kubepods/burstable/pod{POD_UID}/{{}}"),
        ),
        (4, "cri-o", None, "/machine.slice/crio-{}.scope".to_owned()),
        (
            5,
            "podman",
            None,
            "/machine.slice/libpod-{}.scope".to_owned(),
        ),
        // Nested: a Docker-in-Docker container inside another's cgroup;
        // the innermost one is the actor.
        (
            6,
            "docker",
            None,
            format!(
                "/system.slice/docker-{}.scope/docker/{{}}",
                container_id(16)
            ),
        ),
    ] {
        let id = container_id(tag);
        out.push(Case {
            cgroups_path: path.replace("{}", &id),
            runtime,
            pod_uid,
            id,
        });
    }
    out
}

fn args_are(r: &Value, want: &[&str]) -> bool {
    r["exec"]["args"]
        .as_array()
        .is_some_and(|a| a.len() == want.len() && a.iter().zip(want).all(|(x, w)| x == w))
}

#[test]
fn every_cgroup_naming_style_is_attributed() {
    let cases = cases();
    let mut sensor = Sensor::start(&["--capture-opens", "all", "--capture-connects", "all"]);
    for c in &cases {
        RuncContainer::new(
            &c.id,
            &c.cgroups_path,
            // Its own network namespace: nothing listens, the connect is
            // refused and reported all the same.
            "cat /etc/hostname > /dev/null; echo staged > /tmp/out; nc 127.0.0.1 9 < /dev/null 2> /dev/null; true",
        )
        .run();
    }
    for c in &cases {
        let exec = sensor.expect_one("exec", &format!("cat in {}", c.cgroups_path), |r| {
            args_are(r, &["cat", "/etc/hostname"]) && r["container"]["id"] == c.id.as_str()
        });
        assert_eq!(
            exec["container"]["runtime"], c.runtime,
            "{}",
            c.cgroups_path
        );
        assert_eq!(
            exec["container"]["pod_uid"].as_str(),
            c.pod_uid,
            "{}",
            c.cgroups_path
        );
        assert_eq!(
            text_bytes(&exec["exec"]["path"]),
            b"/bin/busybox",
            "path as seen inside the container"
        );
        // The container's shell is the entry point; the runtime above it is not listed.
        let ancestors = exec["process"]["ancestors"].as_array().unwrap();
        assert_eq!(ancestors.len(), 1, "{exec}");
        assert_eq!(ancestors[0]["args"][0], "sh");

        let pid = exec["process"]["pid"].clone();
        let open = sensor.expect_one("open", "cat's open of /etc/hostname", |r| {
            r["process"]["pid"] == pid && r["open"]["path"] == "/etc/hostname"
        });
        assert_eq!(open["container"]["id"], c.id.as_str());
        let write = sensor.expect_one("open", "the shell's write of /tmp/out", |r| {
            r["open"]["path"] == "/tmp/out" && r["container"]["id"] == c.id.as_str()
        });
        assert_eq!(write["open"]["access"], "write");
        let connect = sensor.expect_one("connect", "nc's connect in the container", |r| {
            r["connect"]["port"] == 9 && r["container"]["id"] == c.id.as_str()
        });
        assert_eq!(connect["connect"]["address"], "127.0.0.1");
        assert!(connect["connect"]["error"].is_string(), "{connect}");
    }
    // runc itself runs on the host.
    let runc = sensor.find("exec", |r| {
        r["exec"]["args"][0] == "runc" && r["exec"]["args"][1] == "run"
    });
    assert!(
        !runc.is_empty() && runc.iter().all(|r| r["container"]["id"] == "host"),
        "{runc:?}"
    );
}

#[test]
fn processes_started_before_the_sensor_are_attributed() {
    // A container and a host shell, both running before the sensor starts;
    // their shells write with a builtin, so the writer is the old process.
    let id = container_id(9);
    let mut ctr = RuncContainer::new(
        &id,
        &format!("/system.slice/docker-{id}.scope"),
        "while :; do echo x > /tmp/beat; sleep 0.1; done",
    );
    ctr.start_detached();
    let host_dir = sensor_tests::unique_dir("prestart");
    let beat = host_dir.path().join("beat");
    let mut host = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while :; do echo x > {}; sleep 0.1; done",
            beat.display()
        ))
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));

    let mut sensor = Sensor::start(&["--hooks", "open", "--capture-opens", "all"]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let _ = host.kill();
    let _ = host.wait();
    let host_pid = host.id();

    let in_ctr = sensor.find("open", |r| {
        r["open"]["path"] == "/tmp/beat" && r["container"]["id"] == id.as_str()
    });
    assert!(
        !in_ctr.is_empty(),
        "no attributed open from the pre-existing container shell"
    );
    let r = &in_ctr[0];
    assert_eq!(r["container"]["runtime"], "docker");
    assert_eq!(
        r["process"]["args"][0], "sh",
        "argv from the /proc scan: {r}"
    );

    let on_host = sensor.find("open", |r| {
        r["process"]["pid"] == host_pid
            && text_bytes(&r["open"]["path"]) == beat.as_os_str().as_encoded_bytes()
    });
    assert!(
        !on_host.is_empty(),
        "no open from the pre-existing host shell"
    );
    assert_eq!(on_host[0]["container"]["id"], "host");
    assert_eq!(on_host[0]["process"]["exe"], "/usr/bin/dash");
    assert_eq!(on_host[0]["process"]["ppid"], std::process::id());
}

#[test]
fn cri_metadata_mounts_and_lifecycle() {
    let id = container_id(7);
    let pod_ = POD_UID.replace('-', "_");
    let path = format!(
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{pod_}.slice/cri-containerd-{id}.scope"
    );
    let host_data = sensor_tests::unique_dir("hostdata");
    let sock_dir = sensor_tests::unique_dir("sock");
    std::fs::write(host_data.path().join("secrets.csv"), b"a,b\n").unwrap();
    let sock = sock_dir.path().join("docker.sock");
    std::fs::write(&sock, b"").unwrap();
    let mut sensor = Sensor::start(&["--capture-opens", "all"]);
    let (data_src, sock_src) = (
        host_data.path().to_str().unwrap().to_owned(),
        sock.to_str().unwrap().to_owned(),
    );
    let script = format!(
        "cat /stage/secrets.csv > /dev/null; {}",
        sensor_tests::linger()
    );
    RuncContainer::with_config(&id, &path, &script, |config| {
        // What containerd's CRI plugin writes for a pod container.
        config["annotations"] = serde_json::json!({
            "io.kubernetes.cri.container-type": "container",
            "io.kubernetes.cri.container-name": "exfil",
            "io.kubernetes.cri.sandbox-name": "web-7d9f",
            "io.kubernetes.cri.sandbox-namespace": "prod",
            "io.kubernetes.cri.sandbox-uid": POD_UID,
            "io.kubernetes.cri.image-name": "registry.local/tools:1.0"
        });
        let mounts = config["mounts"].as_array_mut().unwrap();
        mounts.push(serde_json::json!({"destination": "/stage", "type": "bind", "source": data_src, "options": ["rbind", "rw"]}));
        mounts.push(serde_json::json!({"destination": "/var/run/docker.sock", "type": "bind", "source": sock_src, "options": ["bind", "ro"]}));
    })
    .run();

    let start = sensor.expect_one("container_start", "the CRI container", |r| {
        r["container"]["id"] == id.as_str()
    });
    let c = &start["container"];
    assert_eq!(
        (c["runtime"].as_str(), c["pod_uid"].as_str()),
        (Some("containerd"), Some(POD_UID))
    );
    assert_eq!(
        (
            c["name"].as_str(),
            c["pod_name"].as_str(),
            c["pod_namespace"].as_str()
        ),
        (Some("exfil"), Some("web-7d9f"), Some("prod")),
        "{start}"
    );
    assert_eq!(c["image"], "registry.local/tools:1.0");
    assert_eq!(c["runtime_socket"], true);
    let mounts = c["bind_mounts"].as_array().unwrap();
    let stage = mounts
        .iter()
        .find(|m| m["destination"] == "/stage")
        .expect("host path mount listed");
    assert_eq!(
        (stage["source"].as_str(), stage["read_only"].as_bool()),
        (host_data.path().to_str(), Some(false))
    );

    // Every event in the container carries the same metadata.
    let read = sensor.expect_one("open", "the staged file read in the CRI container", |r| {
        r["open"]["path"] == "/stage/secrets.csv" && r["container"]["id"] == id.as_str()
    });
    assert_eq!(read["container"]["pod_name"], "web-7d9f");
    sensor.expect_one("container_stop", "the CRI container", |r| {
        r["container"]["id"] == id.as_str()
    });
}

#[test]
fn docker_container_carries_name_and_image() {
    let dockerd = sensor_tests::Dockerd::start();
    dockerd.import_busybox("sensor-test/busybox:1");
    let name = format!("sensor-test-{}", std::process::id());
    let mut sensor = Sensor::start(&[]);
    let out = dockerd.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--name",
        &name,
        "sensor-test/busybox:1",
        "sh",
        "-c",
        &format!("cat /etc/hostname > /dev/null; {}", sensor_tests::linger()),
    ]);
    assert!(
        out.status.success(),
        "docker run: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let exec = sensor.expect_one("exec", "cat in the docker container", |r| {
        args_are(r, &["cat", "/etc/hostname"]) && r["container"]["name"] == name.as_str()
    });
    let c = &exec["container"];
    assert_eq!(
        (c["runtime"].as_str(), c["image"].as_str()),
        (Some("docker"), Some("sensor-test/busybox:1")),
        "{exec}"
    );
    assert_eq!(c["id"].as_str().map(str::len), Some(64));
    let id = c["id"].clone();
    sensor.expect_one("container_start", "docker container", |r| {
        r["container"]["id"] == id
    });
    sensor.expect_one("container_stop", "docker container", |r| {
        r["container"]["id"] == id
    });
    // dockerd and the docker CLI are host processes.
    let cli = sensor.find("exec", |r| {
        r["exec"]["args"][0] == "docker"
            && r["exec"]["args"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "run")
    });
    assert!(!cli.is_empty() && cli.iter().all(|r| r["container"]["id"] == "host"));
}

#[test]
fn podman_container_carries_name_and_image() {
    // Flags that work on hybrid-cgroup hosts (docs/PLATFORMS.md).
    let podman = |args: &[&str]| {
        std::process::Command::new("podman")
            .args([
                "--runtime=runc",
                "--cgroup-manager=cgroupfs",
                "--events-backend=file",
            ])
            .args(args)
            .output()
            .expect("podman (cargo xtask test installs it)")
    };
    let image = "localhost/sensor-test/busybox:1";
    if !podman(&["image", "exists", image]).status.success() {
        let tar = sensor_tests::busybox_rootfs_tar();
        let out = podman(&[
            "import",
            tar.path().join("rootfs.tar").to_str().unwrap(),
            image,
        ]);
        assert!(
            out.status.success(),
            "podman import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let name = format!("sensor-test-podman-{}", std::process::id());
    let mut sensor = Sensor::start(&[]);
    let out = podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=4096:4096",
        "--name",
        &name,
        image,
        "sh",
        "-c",
        &format!("cat /etc/hostname > /dev/null; {}", sensor_tests::linger()),
    ]);
    assert!(
        out.status.success(),
        "podman run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exec = sensor.expect_one("exec", "cat in the podman container", |r| {
        args_are(r, &["cat", "/etc/hostname"]) && r["container"]["name"] == name.as_str()
    });
    assert_eq!(
        (
            exec["container"]["runtime"].as_str(),
            exec["container"]["image"].as_str()
        ),
        (Some("podman"), Some(image)),
        "{exec}"
    );
}

#[test]
fn containerd_ctr_container_is_attributed_by_runtime_state() {
    // `ctr run` puts containers in /<namespace>/<id>: no naming convention
    // to parse, so attribution goes through the runtime's own state.
    let containerd = sensor_tests::Containerd::start();
    let rootfs = sensor_tests::unique_dir("ctr-rootfs");
    sensor_tests::busybox_rootfs(rootfs.path());
    std::fs::write(rootfs.path().join("etc/hostname"), b"ctr\n").unwrap();
    let id = format!("sensor-ctr-{}", std::process::id());
    let mut sensor = Sensor::start(&[]);
    let out = containerd.ctr(&[
        "run",
        "--rm",
        "--rootfs",
        rootfs.path().to_str().unwrap(),
        &id,
        "/bin/busybox",
        "sh",
        "-c",
        &format!("cat /etc/hostname > /dev/null; {}", sensor_tests::linger()),
    ]);
    assert!(
        out.status.success(),
        "ctr run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exec = sensor.expect_one("exec", "cat in the ctr container", |r| {
        args_are(r, &["cat", "/etc/hostname"]) && r["container"]["id"] == id.as_str()
    });
    assert_eq!(exec["container"]["runtime"], "containerd", "{exec}");
    sensor.expect_one("container_start", "ctr container", |r| {
        r["container"]["id"] == id.as_str()
    });
}
