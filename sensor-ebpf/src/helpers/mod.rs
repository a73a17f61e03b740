//! Layered helpers: `read` (kernel/user memory), `task` (fields of the
//! current task), `args` (the reported syscall's arguments), `path` (dentry
//! walks), `emit` (record assembly and the ring). Helpers never call into
//! `probes`.
pub mod args;
pub mod emit;
pub mod path;
pub mod read;
pub mod task;
