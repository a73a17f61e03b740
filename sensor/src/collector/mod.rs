//! Event sources. `ebpf` drains the kernel ring buffer; a polling fallback
//! for hosts without eBPF comes later behind the same output.
pub mod ebpf;
pub mod egress;
pub mod losses;
