//! Userspace side of the sensor.
//!
//! Data flows one way: `loader` puts the eBPF programs in the kernel,
//! `collector` drains their ring buffer, `decode` turns records into typed
//! [`event::Event`]s, and `output` writes them as JSON lines.
#![deny(missing_docs)]

pub mod clock;
pub mod collector;
pub mod decode;
pub mod event;
pub mod loader;
pub mod output;
pub mod text;
