//! Userspace side of the sensor.
//!
//! Data flows one way: `loader` puts the eBPF programs in the kernel,
//! `collector` drains their ring buffer, `decode` turns records into typed
//! [`event::Event`]s, `enrich` attaches process and container context,
//! `rules` raises alerts, and `output` writes both as JSON lines.
#![deny(missing_docs)]

pub mod clock;
pub mod collector;
pub mod container;
pub mod decode;
pub mod enrich;
pub mod event;
pub mod loader;
pub mod output;
pub mod process;
pub mod rules;
pub mod text;
