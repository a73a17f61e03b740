//! Layered helpers: `read` (kernel/user memory), `task` (fields of the
//! current task), `path` (dentry walks), `emit` (record assembly and the ring).
pub mod emit;
pub mod path;
pub mod read;
pub mod task;
