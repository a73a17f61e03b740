//! Kernel tests: one module per hook family, mirroring sensor-ebpf/src/probes.
mod cgroup;
mod connect;
mod container;
mod errors;
mod exec;
mod loss;
mod open;
