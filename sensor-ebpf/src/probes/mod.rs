//! One module per hook family. `tiered!` defines each hook twice, as a BTF
//! tracepoint and as a raw tracepoint, over one body taking the raw argument
//! array: both contexts are `u64 args[]`, so the bodies are identical and the
//! loader picks whichever program type this kernel accepts. `lsm` adds the
//! LSM tier's programs where the kernel runs BPF LSM.
mod cgroup;
mod connect;
mod egress;
mod lsm;
mod open;
mod process;
mod syscall;
mod tamper;

/// Argument `n` of a tracepoint context.
#[inline(always)]
pub(crate) fn arg(ctx: *const u64, n: usize) -> u64 {
    // SAFETY: ctx is the tracepoint's argument array; n is a constant within
    // the tracepoint's arity (checked by the verifier).
    unsafe { *ctx.add(n) }
}

macro_rules! tiered {
    ($tracepoint:literal, $btf:ident, $raw:ident, $body:ident) => {
        #[aya_ebpf::macros::btf_tracepoint(function = $tracepoint)]
        pub fn $btf(ctx: aya_ebpf::programs::BtfTracePointContext) -> i32 {
            $body::<$crate::helpers::read::Direct>(aya_ebpf::EbpfContext::as_ptr(&ctx) as *const u64);
            0
        }

        #[aya_ebpf::macros::raw_tracepoint(tracepoint = $tracepoint)]
        pub fn $raw(ctx: aya_ebpf::programs::RawTracePointContext) -> i32 {
            $body::<$crate::helpers::read::Probe>(aya_ebpf::EbpfContext::as_ptr(&ctx) as *const u64);
            0
        }
    };
}
pub(crate) use tiered;
