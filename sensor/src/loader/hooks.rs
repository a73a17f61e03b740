//! The hook tables: every program the sensor can attach, the tracepoint or
//! LSM hook it rides, and the family (`--hooks`) it belongs to. Program names
//! follow sensor-ebpf: `tp_btf_<tracepoint>` and `raw_tp_<tracepoint>` from
//! its `tiered!` macro, `lsm_<hook>` for the LSM tier.
use std::{fmt, str::FromStr};

use sensor_common::hook_bits;

/// One kernel attachment point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hook {
    /// Tracepoint name.
    pub tracepoint: &'static str,
    /// Families that need it ([`hook_bits`]).
    pub families: u32,
}

/// Every hook, in attach order (process lifecycle first so the table fills
/// before the events that need it).
pub const HOOKS: &[Hook] = &[
    Hook {
        tracepoint: "sched_process_fork",
        families: hook_bits::EXEC,
    },
    Hook {
        tracepoint: "sched_process_exec",
        families: hook_bits::EXEC,
    },
    Hook {
        tracepoint: "sched_process_exit",
        families: hook_bits::EXEC,
    },
    Hook {
        tracepoint: "sys_exit",
        families: hook_bits::OPEN | hook_bits::CONNECT | hook_bits::TAMPER,
    },
    Hook {
        tracepoint: "cgroup_mkdir",
        families: hook_bits::CGROUP,
    },
    Hook {
        tracepoint: "cgroup_rmdir",
        families: hook_bits::CGROUP,
    },
];

/// An LSM tier program. It adds to the tracepoint hooks rather than
/// replacing them: the syscall exit still reports the result of every
/// syscall open and connect (see sensor-ebpf `probes::lsm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LsmHook {
    /// LSM hook name (`security_<name>` in the kernel).
    pub name: &'static str,
    /// Families that need it ([`hook_bits`]).
    pub families: u32,
    /// What the tracepoint tiers miss without it, for the startup log.
    pub adds: &'static str,
}

impl LsmHook {
    /// Program name in the object.
    pub fn program(&self) -> String {
        format!("lsm_{}", self.name)
    }
}

/// The LSM tier's programs.
pub const LSM_HOOKS: &[LsmHook] = &[
    LsmHook {
        name: "file_open",
        families: hook_bits::OPEN,
        adds: "io_uring opens",
    },
    LsmHook {
        name: "socket_connect",
        families: hook_bits::CONNECT,
        adds: "the kernel's copy of connect addresses, io_uring connects",
    },
];

/// How a tracepoint program is attached. Both tiers run the same code; BTF
/// tracepoints are preferred (typed context, cheaper dispatch), raw
/// tracepoints load on kernels or policies that refuse them. The LSM tier
/// ([`LSM_HOOKS`], BPF_PROG_TYPE_LSM) runs on top of either.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    /// `tp_btf` (BPF_PROG_TYPE_TRACING, kernel >= 5.5).
    BtfTracepoint,
    /// `raw_tracepoint` (kernel >= 4.17).
    RawTracepoint,
}

impl Tier {
    /// Program name of `hook` in this tier.
    pub fn program(self, hook: &Hook) -> String {
        match self {
            Self::BtfTracepoint => format!("tp_btf_{}", hook.tracepoint),
            Self::RawTracepoint => format!("raw_tp_{}", hook.tracepoint),
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BtfTracepoint => "tp_btf",
            Self::RawTracepoint => "raw_tp",
        })
    }
}

/// `--tier`: pick automatically or force one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TierChoice {
    /// The LSM programs where the kernel runs them, and the best
    /// tracepoint tier each hook loads with.
    #[default]
    Auto,
    /// Require the LSM programs (fail otherwise), tracepoints as in auto.
    Lsm,
    /// BTF tracepoints only, no LSM programs.
    TpBtf,
    /// Raw tracepoints only, no LSM programs.
    RawTp,
}

/// Whether the LSM programs are loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LsmPolicy {
    /// Load where the kernel allows, else log what is missing.
    Try,
    /// Load or fail.
    Require,
    /// Do not load.
    Skip,
}

impl TierChoice {
    /// Tracepoint tiers to try, best first.
    pub fn candidates(self) -> &'static [Tier] {
        match self {
            Self::Auto | Self::Lsm => &[Tier::BtfTracepoint, Tier::RawTracepoint],
            Self::TpBtf => &[Tier::BtfTracepoint],
            Self::RawTp => &[Tier::RawTracepoint],
        }
    }

    /// What to do with [`LSM_HOOKS`].
    pub fn lsm(self) -> LsmPolicy {
        match self {
            Self::Auto => LsmPolicy::Try,
            Self::Lsm => LsmPolicy::Require,
            Self::TpBtf | Self::RawTp => LsmPolicy::Skip,
        }
    }
}

/// A set of hook families, parsed from `exec,open,connect,cgroup` or `all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookSet(pub u32);

impl HookSet {
    /// Every family.
    pub const ALL: Self = Self(
        hook_bits::EXEC
            | hook_bits::OPEN
            | hook_bits::CONNECT
            | hook_bits::CGROUP
            | hook_bits::EGRESS
            | hook_bits::TAMPER,
    );
}

impl FromStr for HookSet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut bits = 0;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            bits |= match part {
                "all" => Self::ALL.0,
                "exec" => hook_bits::EXEC,
                "open" => hook_bits::OPEN,
                "connect" => hook_bits::CONNECT,
                "cgroup" => hook_bits::CGROUP,
                "egress" => hook_bits::EGRESS,
                "tamper" => hook_bits::TAMPER,
                other => {
                    return Err(format!(
                        "unknown hook family {other:?} (expected exec, open, connect, cgroup, egress, tamper or all)"
                    ));
                }
            };
        }
        if bits == 0 {
            return Err("no hook family given".into());
        }
        Ok(Self(bits))
    }
}

impl fmt::Display for HookSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            (hook_bits::EXEC, "exec"),
            (hook_bits::OPEN, "open"),
            (hook_bits::CONNECT, "connect"),
            (hook_bits::CGROUP, "cgroup"),
            (hook_bits::EGRESS, "egress"),
            (hook_bits::TAMPER, "tamper"),
        ]
        .iter()
        .filter(|(b, _)| self.0 & b != 0)
        .map(|(_, n)| *n)
        .collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_sets_parse_and_print() {
        assert_eq!(
            "open, connect".parse::<HookSet>().unwrap().to_string(),
            "open,connect"
        );
        assert_eq!("all".parse::<HookSet>().unwrap(), HookSet::ALL);
        assert!(
            "exec,bogus"
                .parse::<HookSet>()
                .unwrap_err()
                .contains("bogus")
        );
        assert!("".parse::<HookSet>().is_err());
    }

    #[test]
    fn only_auto_and_lsm_load_the_lsm_tier() {
        assert_eq!(TierChoice::Auto.lsm(), LsmPolicy::Try);
        assert_eq!(TierChoice::Lsm.lsm(), LsmPolicy::Require);
        assert_eq!(TierChoice::TpBtf.lsm(), LsmPolicy::Skip);
        assert_eq!(TierChoice::RawTp.lsm(), LsmPolicy::Skip);
        assert_eq!(TierChoice::Lsm.candidates(), TierChoice::Auto.candidates());
        // Every family the LSM tier serves is a family the flag accepts.
        for h in LSM_HOOKS {
            assert_eq!(h.families & !HookSet::ALL.0, 0, "{}", h.name);
            assert_eq!(h.program(), format!("lsm_{}", h.name));
        }
    }
}
