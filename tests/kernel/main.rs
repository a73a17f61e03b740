//! Kernel tests: one module per hook family, mirroring sensor-ebpf/src/probes.
mod cgroup;
#[cfg(target_arch = "x86_64")]
mod compat;
mod config;
mod connect;
mod container;
mod deploy;
mod detect;
mod errors;
mod exec;
mod loss;
mod lsm;
mod metrics;
mod open;
mod outputs;
mod poll;
mod storm;
mod tamper;
