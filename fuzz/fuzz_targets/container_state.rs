//! Container runtime state the sensor reads from disk or a socket, every
//! file a container's owner can shape: runc's state.json, the OCI bundle's
//! config.json, Docker's config.v2.json and Engine API inspect answer,
//! containers/storage's containers.json, and the runtime command lines
//! state directories are learnt from. Each input is tried as all of them;
//! what is not valid is an error or nothing, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sensor::container::{docker_api, metadata};

/// The container id the containers.json seeds list.
const STORAGE_ID: &str = "abc";

fuzz_target!(|bytes: &[u8]| {
    let _ = metadata::parse_runc_state(bytes);
    if let Ok(meta) = metadata::parse_oci_config(bytes) {
        // Written on every event of the container.
        serde_json::to_vec(&meta).expect("metadata serializes");
        assert!(
            !meta.runtime_socket || !meta.bind_mounts.is_empty(),
            "a runtime socket without a bind mount: {meta:?}"
        );
    }
    let _ = metadata::parse_docker_config(bytes);
    let _ = metadata::parse_storage_containers(bytes, STORAGE_ID);
    let _ = docker_api::parse_inspect_response(bytes);

    // The same bytes as a command line (NUL-separated, as /proc and exec
    // events carry it).
    let args: Vec<&[u8]> = bytes.split(|&b| b == 0).collect();
    let _ = metadata::is_runtime_setup(&args);
    let _ = metadata::state_dir_flags(&args);
});
