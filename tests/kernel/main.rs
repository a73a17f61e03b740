//! Kernel tests: one module per hook family, mirroring sensor-ebpf/src/probes.
mod cgroup;
#[cfg(target_arch = "x86_64")]
mod compat;
mod connect;
mod container;
mod detect;
mod errors;
mod exec;
mod loss;
mod lsm;
mod metrics;
mod open;
mod poll;
