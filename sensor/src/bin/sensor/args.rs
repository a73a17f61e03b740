//! The command line: every subcommand and option, parsed and validated by
//! clap (values by the parsers below, so a configuration file's value is
//! refused with its position, as a flag's would be).
use std::path::PathBuf;

use clap::{Parser, Subcommand};
#[cfg(target_os = "linux")]
use sensor::loader::{
    self,
    hooks::{HookSet, TierChoice},
};
use sensor::{
    output::{self, Format, Target, syslog::Facility},
    rules::RuleSource,
};

#[derive(Parser)]
#[command(
    name = "sensor",
    version,
    about = "eBPF runtime-security sensor: kernel events as JSON lines"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Load the kernel hooks and stream events and alerts until
    /// SIGINT/SIGTERM; SIGHUP reloads the rules.
    Run(Box<RunArgs>),
    /// Rule files.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Run the rules over recorded events (JSON lines, e.g. a capture from
    /// `sensor run` or the fallback collector) and print the alerts.
    Replay(ReplayArgs),
    /// Configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Install on this host for systemd: this binary, the unit, a
    /// configuration file and the default rules (local edits are kept).
    #[cfg(target_os = "linux")]
    Install {
        /// Install below this directory instead of `/` (packaging, images).
        #[arg(long, default_value = "/")]
        root: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum ConfigCommand {
    /// Validate a configuration file: every error as file:line:col;
    /// non-zero exit.
    Check {
        /// The file (YAML: `sensor run` options as keys).
        path: PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum RulesCommand {
    /// Validate rule files: every error as file:line:col; non-zero exit.
    Check {
        /// Rule files or directories; none: the built-in set.
        paths: Vec<PathBuf>,
    },
}

#[derive(Parser)]
pub(crate) struct RuleArgs {
    /// Rule files or directories (repeatable); default: the built-in set.
    #[arg(long = "rules", env = "SENSOR_RULES", value_delimiter = ',')]
    pub(crate) rules: Vec<PathBuf>,
    /// Run without rules: events only.
    #[arg(long, conflicts_with = "rules")]
    pub(crate) no_rules: bool,
}

impl RuleArgs {
    /// The rules these flags ask for, if any.
    pub(crate) fn source(&self) -> Option<RuleSource> {
        RuleSource::chosen(&self.rules, self.no_rules)
    }
}

#[derive(Parser)]
pub(crate) struct ReplayArgs {
    /// Recorded events, one JSON record per line (`-` for stdin).
    pub(crate) file: PathBuf,
    #[command(flatten)]
    pub(crate) rules: RuleArgs,
    /// Write the events too, not only the alerts.
    #[arg(long)]
    pub(crate) events: bool,
    /// Encoding of what is written: native (docs/EVENTS.md), ecs or ocsf
    /// (docs/OUTPUTS.md).
    #[arg(long, default_value = "native")]
    pub(crate) format: Format,
    /// The node the records came from, named on each; default: none in the
    /// native format, `unknown` in ECS and OCSF, which require one.
    #[arg(long)]
    pub(crate) node_name: Option<String>,
}

#[derive(Parser)]
pub(crate) struct RunArgs {
    /// YAML file of these options (`ring_bytes: 16777216`); flags and
    /// environment variables override it (docs/OPERATIONS.md).
    #[arg(long, env = "SENSOR_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Where records go (repeatable, comma-separated): `-` (stdout), a
    /// file path (appended, rotated), `syslog+udp://HOST:PORT`,
    /// `syslog+tcp://HOST:PORT`, or an `http(s)://` webhook URL.
    #[arg(
        long,
        short,
        default_value = "-",
        env = "SENSOR_OUTPUT",
        value_delimiter = ','
    )]
    pub(crate) output: Vec<Target>,
    /// Encoding of every output: native (docs/EVENTS.md), ecs or ocsf
    /// (docs/OUTPUTS.md).
    #[arg(long, default_value = "native", env = "SENSOR_FORMAT")]
    pub(crate) format: Format,
    /// Files: rotate when the next record would take the file past this size.
    #[arg(long, default_value = "100MiB", value_parser = parse_size, env = "SENSOR_ROTATE_SIZE")]
    pub(crate) rotate_size: u64,
    /// Files: rotated files kept (`FILE.1` newest); older ones are deleted.
    #[arg(long, default_value_t = 5, env = "SENSOR_ROTATE_KEEP")]
    pub(crate) rotate_keep: u32,
    /// Syslog and webhook: records queued while the receiver is slow or
    /// down; beyond that, new records are dropped and counted.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..), env = "SENSOR_QUEUE_SIZE")]
    pub(crate) queue_size: u32,
    /// Syslog and webhook: most records in one batch (one webhook POST).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..), env = "SENSOR_BATCH_SIZE")]
    pub(crate) batch_size: u32,
    /// Syslog and webhook: how long a record waits for its batch to fill.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, env = "SENSOR_BATCH_WAIT")]
    pub(crate) batch_wait: std::time::Duration,
    /// Syslog and webhook: time allowed per request or connection.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, env = "SENSOR_OUTPUT_TIMEOUT")]
    pub(crate) output_timeout: std::time::Duration,
    /// Syslog and webhook: at shutdown, how long undelivered records may
    /// still be retried before they are counted as dropped.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, env = "SENSOR_OUTPUT_DRAIN")]
    pub(crate) output_drain: std::time::Duration,
    /// Webhook: a header sent with every request, `NAME: VALUE`
    /// (repeatable), e.g. `Authorization: Bearer …`.
    #[arg(long = "webhook-header", value_parser = output::webhook::parse_header, env = "SENSOR_WEBHOOK_HEADER")]
    pub(crate) webhook_headers: Vec<(String, String)>,
    /// Webhook: PEM certificates to verify an HTTPS receiver against
    /// (a private CA), instead of the built-in public roots.
    #[arg(long, env = "SENSOR_WEBHOOK_CA")]
    pub(crate) webhook_ca: Option<PathBuf>,
    /// Syslog facility (RFC 5424 name).
    #[arg(long, default_value = "local0", env = "SENSOR_SYSLOG_FACILITY")]
    pub(crate) syslog_facility: Facility,
    /// Hook families: comma-separated exec, open, connect, cgroup, or all.
    #[cfg(target_os = "linux")]
    #[arg(long, default_value = "all", env = "SENSOR_HOOKS")]
    pub(crate) hooks: HookSet,
    /// Program tier: the best each hook loads with, or one forced.
    #[cfg(target_os = "linux")]
    #[arg(long, value_enum, default_value_t = TierChoice::Auto, env = "SENSOR_TIER")]
    pub(crate) tier: TierChoice,
    /// Which opens reach userspace: `rules`, those the loaded rules could
    /// match, decided in the kernel (the default with rules), or `all` (the
    /// default with --no-rules).
    #[cfg(target_os = "linux")]
    #[arg(long, value_enum, env = "SENSOR_CAPTURE_OPENS")]
    pub(crate) capture_opens: Option<Capture>,
    /// Which connects reach userspace, as for opens: `rules` keeps those
    /// the loaded rules could match by destination family and result (the
    /// default with rules), `all` every one (the default with --no-rules).
    #[cfg(target_os = "linux")]
    #[arg(long, value_enum, env = "SENSOR_CAPTURE_CONNECTS")]
    pub(crate) capture_connects: Option<Capture>,
    /// Ring buffer size in bytes (power of two).
    #[cfg(target_os = "linux")]
    #[arg(long, default_value_t = 8 << 20, value_parser = parse_ring_bytes, env = "SENSOR_RING_BYTES")]
    pub(crate) ring_bytes: u32,
    /// Open records, and apart from them connect records, one process may
    /// send per second; beyond that its records of that kind are counted
    /// (loss records, `rate_limited`, with its pid), not sent, until the
    /// second is over. 0: no limit.
    #[cfg(target_os = "linux")]
    #[arg(long, default_value_t = sensor::loader::DEFAULT_RATE_LIMIT, env = "SENSOR_RATE_LIMIT")]
    pub(crate) rate_limit: u32,
    /// Created once every hook is attached (for supervisors and tests).
    #[arg(long)]
    pub(crate) ready_file: Option<PathBuf>,
    /// The node (machine) named on every record as `node`; default: the
    /// host name. In Kubernetes, the pod's `spec.nodeName`.
    #[arg(long, env = "SENSOR_NODE_NAME")]
    pub(crate) node_name: Option<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served, or `off`.
    /// Local only by default; a DaemonSet binds the pod's address.
    #[arg(long, default_value = "127.0.0.1:9464", value_parser = parse_listen, env = "SENSOR_METRICS_ADDRESS")]
    pub(crate) metrics_address: Listen,
    /// Period of `egress` records (bytes per container and destination).
    #[cfg(target_os = "linux")]
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, env = "SENSOR_EGRESS_INTERVAL")]
    pub(crate) egress_interval: std::time::Duration,
    /// Event source: eBPF where the programs load, else polling (`auto`),
    /// or one forced.
    #[arg(long, value_enum, default_value_t = CollectorChoice::Auto, env = "SENSOR_COLLECTOR")]
    pub(crate) collector: CollectorChoice,
    /// Polling collector: period between process and socket table snapshots.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, env = "SENSOR_POLL_INTERVAL")]
    pub(crate) poll_interval: std::time::Duration,
    /// Polling collector: directories whose file creations and writes are
    /// reported (repeatable; default: temporary directories and mail spools).
    #[arg(long = "watch", env = "SENSOR_WATCH", value_delimiter = ',')]
    pub(crate) watch: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) rules: RuleArgs,
}

/// `--capture-opens`, `--capture-connects`.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Capture {
    /// Those the loaded rules could match.
    Rules,
    /// Every one.
    All,
}

/// `--ring-bytes`, checked when read, so a configuration file's value is
/// refused with its position.
#[cfg(target_os = "linux")]
fn parse_ring_bytes(s: &str) -> Result<u32, String> {
    let bytes = s.parse().map_err(|e| format!("{e}"))?;
    loader::ring_size(bytes).map_err(|e| e.to_string())
}

/// `--rotate-size`: bytes, or a size such as `100MiB` or `1GB`.
fn parse_size(s: &str) -> Result<u64, String> {
    let size = s
        .parse::<bytesize::ByteSize>()
        .map_err(|e| format!("{e}: expected a size such as 100MiB"))?
        .as_u64();
    if size == 0 {
        return Err("a size of 0 would rotate at every record".into());
    }
    Ok(size)
}

/// `--metrics-address`: an address to listen on, or `off`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Listen(pub(crate) Option<std::net::SocketAddr>);

fn parse_listen(s: &str) -> Result<Listen, String> {
    if s == "off" {
        return Ok(Listen(None));
    }
    s.parse()
        .map(|a| Listen(Some(a)))
        .map_err(|e| format!("{e}: expected ADDRESS:PORT (e.g. 127.0.0.1:9464, [::]:9464) or off"))
}

/// `--collector`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CollectorChoice {
    /// eBPF, falling back to polling when the programs cannot load (or the
    /// system is not Linux).
    Auto,
    /// eBPF or fail.
    Ebpf,
    /// Polling only.
    Poll,
}
