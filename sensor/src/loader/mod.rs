//! Puts the programs in the kernel: preflight, offsets from BTF, globals,
//! then each hook in the best tier that loads.
pub mod hooks;
pub mod offsets;
pub mod preflight;
pub mod watch;

use std::path::Path;

use aya::{
    Btf, Ebpf, EbpfLoader,
    programs::{
        BtfTracePoint, CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, Lsm, Program,
        RawTracePoint,
    },
};
use sensor_common::{EGRESS_PROGRAM, FilterConfig, globals, hook_bits};
use thiserror::Error;
use tracing::{debug, info, warn};

use self::{
    hooks::{HOOKS, Hook, HookSet, LSM_HOOKS, LsmHook, LsmPolicy, Tier, TierChoice},
    offsets::{KernelBtf, OffsetError},
    preflight::PreflightError,
};

/// The compiled eBPF object, built by build.rs.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sensor-ebpf"));

/// What to load.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Hook families.
    pub hooks: HookSet,
    /// Tier policy.
    pub tier: TierChoice,
    /// Ring buffer size in bytes (a power of two, multiple of the page size).
    pub ring_bytes: u32,
    /// Pending bytes that force a reader wakeup.
    pub wakeup_bytes: u64,
    /// Open and connect records per second per process (0: no limit).
    pub rate_limit: u32,
}

/// Default of [`LoadOptions::rate_limit`]: far above what builds, package
/// installs or backups do (tens of thousands of files a second at most),
/// and a fifth of what the sensor drained without loss in the rate bench
/// (500 000 records a second), so one process cannot fill the ring for
/// everyone.
pub const DEFAULT_RATE_LIMIT: u32 = 100_000;

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            hooks: HookSet::ALL,
            tier: TierChoice::Auto,
            ring_bytes: 8 << 20,
            wakeup_bytes: 256 << 10,
            rate_limit: DEFAULT_RATE_LIMIT,
        }
    }
}

/// Loading failed.
#[derive(Debug, Error)]
pub enum LoadError {
    /// Environment check failed.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// Offsets could not be computed.
    #[error(transparent)]
    Offsets(#[from] OffsetError),
    /// The ring size is not usable.
    #[error("ring buffer size {0} must be a power of two and at least 4096")]
    RingSize(u32),
    /// The object could not be loaded.
    #[error("loading the eBPF object: {0}")]
    Object(#[from] aya::EbpfError),
    /// aya could not read the kernel BTF.
    #[error("reading kernel BTF for tp_btf programs: {0}")]
    Btf(#[from] aya::BtfError),
    /// The egress accounting program could not be attached.
    #[error(
        "egress accounting (cgroup_skb on the cgroup2 root {root}) failed: {reason}; run without it with --hooks exec,open,connect,cgroup"
    )]
    Egress {
        /// Where it was attached.
        root: String,
        /// Why.
        reason: String,
    },
    /// A hook loaded in no tier.
    #[error("hook {tracepoint} could not be attached in any allowed tier: {reasons}")]
    Attach {
        /// The hook.
        tracepoint: &'static str,
        /// Each tier's error.
        reasons: String,
    },
}

impl LoadError {
    /// The host cannot run the programs (privileges, kernel, verifier), as
    /// opposed to a setting of ours being wrong: only the former lets
    /// `--collector auto` fall back to polling.
    pub fn is_environment(&self) -> bool {
        !matches!(self, Self::RingSize(_))
    }
}

/// One attached hook.
#[derive(Clone, Debug)]
pub struct Attached {
    /// The hook.
    pub hook: Hook,
    /// Its tier.
    pub tier: Tier,
}

/// Programs in the kernel and the maps to read.
pub struct Loaded {
    /// The object; dropping it detaches everything.
    pub ebpf: Ebpf,
    /// What is attached, in which tier.
    pub attached: Vec<Attached>,
    /// LSM tier programs attached.
    pub lsm: Vec<LsmHook>,
    /// LSM tier programs wanted but not loaded, with the reason.
    pub lsm_missing: Vec<(LsmHook, String)>,
    /// The v1 controller whose cgroup exec/fork/exit events report.
    pub v1_controller: Option<&'static str>,
    /// Egress bytes are counted (the cgroup_skb program is attached).
    pub egress: bool,
    /// The cgroup2 root the egress counter is attached to.
    egress_root: Option<std::path::PathBuf>,
}

impl Loaded {
    /// Detaches every program, so no new records arrive; maps stay readable.
    pub fn detach(&mut self) {
        for a in &self.attached {
            let name = a.tier.program(&a.hook);
            let result = match self.ebpf.program_mut(&name) {
                Some(Program::BtfTracePoint(p)) => p.unload(),
                Some(Program::RawTracePoint(p)) => p.unload(),
                _ => Ok(()),
            };
            if let Err(e) = result {
                warn!(program = %name, error = %e, "detach failed");
            }
        }
        for h in &self.lsm {
            let name = h.program();
            if let Some(Program::Lsm(p)) = self.ebpf.program_mut(&name)
                && let Err(e) = p.unload()
            {
                warn!(program = %name, error = %e, "detach failed");
            }
        }
        if self.egress
            && let Some(Program::CgroupSkb(p)) = self.ebpf.program_mut(EGRESS_PROGRAM)
            && let Err(e) = p.unload()
        {
            warn!(program = EGRESS_PROGRAM, error = %e, "detach failed");
        }
    }
}

/// A ring buffer size the kernel accepts.
pub fn ring_size(bytes: u32) -> Result<u32, LoadError> {
    if !bytes.is_power_of_two() || bytes < 4096 {
        return Err(LoadError::RingSize(bytes));
    }
    Ok(bytes)
}

/// Loads and attaches the hooks `opts` asks for.
pub fn load(opts: &LoadOptions) -> Result<Loaded, LoadError> {
    preflight::check()?;
    ring_size(opts.ring_bytes)?;
    let v1 = preflight::v1_controller();
    // Freed before aya parses its own copy: two parsed kernel BTFs at once
    // were most of the sensor's peak memory.
    let offsets = KernelBtf::from_file(Path::new(preflight::VMLINUX_BTF))?.kernel_offsets(v1)?;
    let filter = FilterConfig {
        hooks: opts.hooks.0,
        self_pid: std::process::id(),
        wakeup_bytes: opts.wakeup_bytes,
        rate_limit: opts.rate_limit,
        _pad: 0,
    };
    info!(
        cgroup_v1_controller = v1.unwrap_or("none"),
        "kernel offsets computed from BTF"
    );

    let started = std::time::Instant::now();
    let btf = Btf::from_sys_fs()?;
    debug!(
        ms = started.elapsed().as_millis() as u64,
        "kernel BTF parsed for aya"
    );
    let mut ebpf = EbpfLoader::new()
        .btf(&btf)
        .override_global(globals::OFFSETS, &offsets, true)
        .override_global(globals::FILTER, &filter, true)
        .map_max_entries(sensor_common::maps::EVENTS, opts.ring_bytes)
        .load(OBJECT)?;

    let mut attached = Vec::new();
    for hook in HOOKS.iter().filter(|h| h.families & opts.hooks.0 != 0) {
        let mut reasons = Vec::new();
        let mut done = None;
        for &tier in opts.tier.candidates() {
            let started = std::time::Instant::now();
            let result = attach(&mut ebpf, &btf, hook, tier);
            debug!(tracepoint = hook.tracepoint, %tier, ms = started.elapsed().as_millis() as u64, ok = result.is_ok(), "load and attach");
            match result {
                Ok(()) => {
                    done = Some(tier);
                    break;
                }
                Err(e) => reasons.push(format!("{tier}: {e}")),
            }
        }
        match done {
            Some(tier) => {
                if !reasons.is_empty() {
                    warn!(tracepoint = hook.tracepoint, %tier, fallback_from = %reasons.join("; "), "hook attached in a lower tier");
                }
                attached.push(Attached { hook: *hook, tier });
            }
            None => {
                return Err(LoadError::Attach {
                    tracepoint: hook.tracepoint,
                    reasons: reasons.join("; "),
                });
            }
        }
    }
    let (lsm, lsm_missing) = attach_lsm_tier(&mut ebpf, &btf, opts)?;
    let egress = opts.hooks.0 & hook_bits::EGRESS != 0;
    let mut egress_root = None;
    if egress {
        egress_root = Some(attach_egress(&mut ebpf)?);
        info!(
            program = EGRESS_PROGRAM,
            "egress accounting attached to the cgroup2 root"
        );
    }
    Ok(Loaded {
        ebpf,
        attached,
        lsm,
        lsm_missing,
        v1_controller: v1,
        egress,
        egress_root,
    })
}

/// Attaches the LSM tier's programs the policy and families ask for.
/// Returns (attached, wanted but refused with the reason); a refusal is an
/// error only when the LSM tier was required.
#[allow(clippy::type_complexity)]
fn attach_lsm_tier(
    ebpf: &mut Ebpf,
    btf: &Btf,
    opts: &LoadOptions,
) -> Result<(Vec<LsmHook>, Vec<(LsmHook, String)>), LoadError> {
    let policy = opts.tier.lsm();
    let (mut attached, mut missing) = (Vec::new(), Vec::new());
    if policy == LsmPolicy::Skip {
        return Ok((attached, missing));
    }
    // The kernel accepts BPF LSM programs only when `bpf` is an active LSM;
    // saying so beats the bare error the load would give. Without securityfs
    // the load itself is the test.
    let inactive = match std::fs::read_to_string(preflight::LSM_LIST) {
        Ok(list) if !list.trim().split(',').any(|l| l == "bpf") => Some(format!(
            "bpf is not an active LSM ({}: {}); boot with lsm={},bpf",
            preflight::LSM_LIST,
            list.trim(),
            list.trim()
        )),
        _ => None,
    };
    for h in LSM_HOOKS.iter().filter(|h| h.families & opts.hooks.0 != 0) {
        let result = match &inactive {
            Some(reason) => Err(anyhow::anyhow!("{reason}")),
            None => attach_lsm(ebpf, btf, h),
        };
        match result {
            Ok(()) => attached.push(*h),
            Err(e) if policy == LsmPolicy::Require => {
                return Err(LoadError::Attach {
                    tracepoint: h.name,
                    reasons: format!("lsm: {e:#}"),
                });
            }
            Err(e) => missing.push((*h, format!("{e:#}"))),
        }
    }
    Ok((attached, missing))
}

fn attach_lsm(ebpf: &mut Ebpf, btf: &Btf, hook: &LsmHook) -> anyhow::Result<()> {
    let name = hook.program();
    let program: &mut Lsm = ebpf
        .program_mut(&name)
        .ok_or_else(|| anyhow::anyhow!("program {name} missing from the object"))?
        .try_into()?;
    program.load(hook.name, btf).map_err(verifier_error)?;
    program.attach()?;
    Ok(())
}

/// Attaches the egress counter to the cgroup2 root: every cgroup below it
/// (containers included) is counted. It is a BPF link, which coexists with
/// other programs there; the kernel refuses attach flags on cgroup links, so
/// the mode is the default one.
fn attach_egress(ebpf: &mut Ebpf) -> Result<std::path::PathBuf, LoadError> {
    let root = crate::container::cgroups::CgroupMounts::discover(None).v2;
    let fail = |root: &str, reason: String| LoadError::Egress {
        root: root.to_owned(),
        reason,
    };
    let Some(root) = root else {
        return Err(fail(
            "(none)",
            "no cgroup2 mount in /proc/self/mountinfo".into(),
        ));
    };
    let shown = root.display().to_string();
    let dir = std::fs::File::open(&root).map_err(|e| fail(&shown, e.to_string()))?;
    let program: &mut CgroupSkb = ebpf
        .program_mut(EGRESS_PROGRAM)
        .ok_or_else(|| fail(&shown, "program missing from the object".into()))?
        .try_into()
        .map_err(|e: aya::programs::ProgramError| fail(&shown, e.to_string()))?;
    program
        .load()
        .map_err(|e| fail(&shown, verifier_error(e).to_string()))?;
    program
        .attach(dir, CgroupSkbAttachType::Egress, CgroupAttachMode::Single)
        .map_err(|e| fail(&shown, format!("{:#}", anyhow::Error::from(e))))?;
    Ok(root)
}

fn attach(ebpf: &mut Ebpf, btf: &Btf, hook: &Hook, tier: Tier) -> anyhow::Result<()> {
    let name = tier.program(hook);
    let program = ebpf
        .program_mut(&name)
        .ok_or_else(|| anyhow::anyhow!("program {name} missing from the object"))?;
    match tier {
        Tier::BtfTracepoint => {
            let p: &mut BtfTracePoint = program.try_into()?;
            p.load(hook.tracepoint, btf).map_err(verifier_error)?;
            p.attach()?;
        }
        Tier::RawTracepoint => {
            let p: &mut RawTracePoint = program.try_into()?;
            p.load().map_err(verifier_error)?;
            p.attach(hook.tracepoint)?;
        }
    }
    Ok(())
}

/// Keeps the verifier log's last lines: the reason is at the end. The
/// precision-tracking trace (`regs=... before ...`) is left out, since it
/// can fill the tail without saying anything.
fn verifier_error(e: aya::programs::ProgramError) -> anyhow::Error {
    let text = format!("{e:#}");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            !(l.starts_with("regs=")
                || l.starts_with("last_idx ")
                || l.starts_with("parent didn't have")
                || l.starts_with("parent already had"))
        })
        .collect();
    let tail = lines[lines.len().saturating_sub(12)..].join("\n");
    // An empty log (the kernel refused before verifying) leaves a dangling
    // "Verifier output:" behind.
    let tail = tail
        .trim_end()
        .trim_end_matches("Verifier output:")
        .trim_end();
    anyhow::anyhow!("{tail}")
}
