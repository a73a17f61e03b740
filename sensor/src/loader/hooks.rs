//! The hook table: every program the sensor can attach, the tracepoint it
//! rides, and the family (`--hooks`) it belongs to. Program names follow the
//! `tiered!` macro in sensor-ebpf: `tp_btf_<tracepoint>` and `raw_tp_<tracepoint>`.
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
        families: hook_bits::OPEN | hook_bits::CONNECT,
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

/// How a program is attached. Both tiers run the same code; BTF tracepoints
/// are preferred (typed context, cheaper dispatch), raw tracepoints load on
/// kernels or policies that refuse them.
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
    /// The best tier each hook loads with.
    #[default]
    Auto,
    /// BTF tracepoints only.
    TpBtf,
    /// Raw tracepoints only.
    RawTp,
}

impl TierChoice {
    /// Tiers to try, best first.
    pub fn candidates(self) -> &'static [Tier] {
        match self {
            Self::Auto => &[Tier::BtfTracepoint, Tier::RawTracepoint],
            Self::TpBtf => &[Tier::BtfTracepoint],
            Self::RawTp => &[Tier::RawTracepoint],
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
            | hook_bits::EGRESS,
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
                other => {
                    return Err(format!(
                        "unknown hook family {other:?} (expected exec, open, connect, cgroup, egress or all)"
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
}
