//! Userspace side of the sensor.
//!
//! Data flows one way: `loader` puts the eBPF programs in the kernel,
//! `collector` drains their ring buffer, `decode` turns records into typed
//! [`event::Record`]s, `enrich` attaches process and container context,
//! and `pipeline` writes each record to `output` (stdout, files, syslog,
//! webhooks; native, ECS or OCSF), runs `rules` on it and writes the
//! alerts. `install` places it on a host. On other systems (and Linux
//! without eBPF) `collector::poll` takes the place of the first four; the
//! eBPF modules are built on Linux only.
//!
//! Everything stands on `event`, the schema; docs/ARCHITECTURE.md lists
//! what each module may import.
#![deny(missing_docs)]

pub mod clock;
pub mod collector;
pub mod config;
pub mod container;
#[cfg(target_os = "linux")]
pub mod decode;
pub mod endpoint;
#[cfg(target_os = "linux")]
pub mod enrich;
pub mod event;
#[cfg(target_os = "linux")]
pub mod install;
pub mod json_cache;
#[cfg(target_os = "linux")]
pub mod loader;
pub mod located;
pub mod metrics;
pub mod output;
pub mod own_files;
pub mod pipeline;
pub mod process;
pub mod rules;
pub mod text;
