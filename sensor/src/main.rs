//! `sensor`: eBPF runtime-security sensor.
use std::{
    ffi::OsString,
    future::Future,
    io::{BufRead as _, BufReader},
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
};

use anyhow::Context as _;
use clap::{CommandFactory as _, Parser, Subcommand};
#[cfg(target_os = "linux")]
use sensor::{
    collector::ebpf::EbpfCollector,
    enrich::Enricher,
    loader::{
        self, LoadOptions, Loaded,
        hooks::{HookSet, TierChoice},
    },
};
use sensor::{
    collector::{
        Detection, RunStats,
        poll::{PollCollector, PollOptions},
    },
    config::{self, ConfigError, OptionSpec, Setting},
    endpoint,
    event::Record,
    metrics::{MeteredSink, Metrics},
    output::{
        self, Encoder, Format, OutputOptions, Outputs, Rotation, Sink, Target, queue::QueueOptions,
        syslog::Facility,
    },
    rules::{RuleSet, RuleSource, engine::Engine},
};
use tracing::{error, info, warn};

#[derive(Parser)]
#[command(
    name = "sensor",
    version,
    about = "eBPF runtime-security sensor: kernel events as JSON lines"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
enum ConfigCommand {
    /// Validate a configuration file: every error as file:line:col;
    /// non-zero exit.
    Check {
        /// The file (YAML: `sensor run` options as keys).
        path: PathBuf,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Validate rule files: every error as file:line:col; non-zero exit.
    Check {
        /// Rule files or directories; none: the built-in set.
        paths: Vec<PathBuf>,
    },
}

#[derive(Parser)]
struct RuleArgs {
    /// Rule files or directories (repeatable); default: the built-in set.
    #[arg(long = "rules", env = "SENSOR_RULES", value_delimiter = ',')]
    rules: Vec<PathBuf>,
    /// Run without rules: events only.
    #[arg(long, conflicts_with = "rules")]
    no_rules: bool,
}

impl RuleArgs {
    fn source(&self) -> Option<RuleSource> {
        if self.no_rules {
            None
        } else if self.rules.is_empty() {
            Some(RuleSource::Builtin)
        } else {
            Some(RuleSource::Paths(self.rules.clone()))
        }
    }
}

#[derive(Parser)]
struct ReplayArgs {
    /// Recorded events, one JSON record per line (`-` for stdin).
    file: PathBuf,
    #[command(flatten)]
    rules: RuleArgs,
    /// Write the events too, not only the alerts.
    #[arg(long)]
    events: bool,
}

#[derive(Parser)]
struct RunArgs {
    /// YAML file of these options (`ring_bytes: 16777216`); flags and
    /// environment variables override it (docs/OPERATIONS.md).
    #[arg(long, env = "SENSOR_CONFIG")]
    config: Option<PathBuf>,
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
    output: Vec<Target>,
    /// Encoding of every output: native (docs/EVENTS.md), ecs or ocsf
    /// (docs/OUTPUTS.md).
    #[arg(long, default_value = "native", env = "SENSOR_FORMAT")]
    format: Format,
    /// Files: rotate when the next record would take the file past this size.
    #[arg(long, default_value = "100MiB", value_parser = parse_size, env = "SENSOR_ROTATE_SIZE")]
    rotate_size: u64,
    /// Files: rotated files kept (`FILE.1` newest); older ones are deleted.
    #[arg(long, default_value_t = 5, env = "SENSOR_ROTATE_KEEP")]
    rotate_keep: u32,
    /// Syslog and webhook: records queued while the receiver is slow or
    /// down; beyond that, new records are dropped and counted.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..), env = "SENSOR_QUEUE_SIZE")]
    queue_size: u32,
    /// Syslog and webhook: most records in one batch (one webhook POST).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..), env = "SENSOR_BATCH_SIZE")]
    batch_size: u32,
    /// Syslog and webhook: how long a record waits for its batch to fill.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, env = "SENSOR_BATCH_WAIT")]
    batch_wait: std::time::Duration,
    /// Syslog and webhook: time allowed per request or connection.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, env = "SENSOR_OUTPUT_TIMEOUT")]
    output_timeout: std::time::Duration,
    /// Syslog and webhook: at shutdown, how long undelivered records may
    /// still be retried before they are counted as dropped.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, env = "SENSOR_OUTPUT_DRAIN")]
    output_drain: std::time::Duration,
    /// Webhook: a header sent with every request, `NAME: VALUE`
    /// (repeatable), e.g. `Authorization: Bearer …`.
    #[arg(long = "webhook-header", value_parser = output::webhook::parse_header, env = "SENSOR_WEBHOOK_HEADER")]
    webhook_headers: Vec<(String, String)>,
    /// Webhook: PEM certificates to verify an HTTPS receiver against
    /// (a private CA), instead of the built-in public roots.
    #[arg(long, env = "SENSOR_WEBHOOK_CA")]
    webhook_ca: Option<PathBuf>,
    /// Syslog facility (RFC 5424 name).
    #[arg(long, default_value = "local0", env = "SENSOR_SYSLOG_FACILITY")]
    syslog_facility: Facility,
    /// Hook families: comma-separated exec, open, connect, cgroup, or all.
    #[cfg(target_os = "linux")]
    #[arg(long, default_value = "all", env = "SENSOR_HOOKS")]
    hooks: HookSet,
    /// Program tier: the best each hook loads with, or one forced.
    #[cfg(target_os = "linux")]
    #[arg(long, value_enum, default_value_t = TierChoice::Auto, env = "SENSOR_TIER")]
    tier: TierChoice,
    /// Which opens reach userspace: `rules`, those the loaded rules could
    /// match, decided in the kernel (the default with rules), or `all` (the
    /// default with --no-rules).
    #[cfg(target_os = "linux")]
    #[arg(long, value_enum, env = "SENSOR_CAPTURE_OPENS")]
    capture_opens: Option<Capture>,
    /// Which connects reach userspace, as for opens: `rules` keeps those
    /// the loaded rules could match by destination family and result (the
    /// default with rules), `all` every one (the default with --no-rules).
    #[cfg(target_os = "linux")]
    #[arg(long, value_enum, env = "SENSOR_CAPTURE_CONNECTS")]
    capture_connects: Option<Capture>,
    /// Ring buffer size in bytes (power of two).
    #[cfg(target_os = "linux")]
    #[arg(long, default_value_t = 8 << 20, value_parser = parse_ring_bytes, env = "SENSOR_RING_BYTES")]
    ring_bytes: u32,
    /// Open records, and apart from them connect records, one process may
    /// send per second; beyond that its records of that kind are counted
    /// (loss records, `rate_limited`, with its pid), not sent, until the
    /// second is over. 0: no limit.
    #[cfg(target_os = "linux")]
    #[arg(long, default_value_t = sensor::loader::DEFAULT_RATE_LIMIT, env = "SENSOR_RATE_LIMIT")]
    rate_limit: u32,
    /// Created once every hook is attached (for supervisors and tests).
    #[arg(long)]
    ready_file: Option<PathBuf>,
    /// The node (machine) named on every record as `node`; default: the
    /// host name. In Kubernetes, the pod's `spec.nodeName`.
    #[arg(long, env = "SENSOR_NODE_NAME")]
    node_name: Option<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served, or `off`.
    /// Local only by default; a DaemonSet binds the pod's address.
    #[arg(long, default_value = "127.0.0.1:9464", value_parser = parse_listen, env = "SENSOR_METRICS_ADDRESS")]
    metrics_address: Listen,
    /// Period of `egress` records (bytes per container and destination).
    #[cfg(target_os = "linux")]
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, env = "SENSOR_EGRESS_INTERVAL")]
    egress_interval: std::time::Duration,
    /// Event source: eBPF where the programs load, else polling (`auto`),
    /// or one forced.
    #[arg(long, value_enum, default_value_t = CollectorChoice::Auto, env = "SENSOR_COLLECTOR")]
    collector: CollectorChoice,
    /// Polling collector: period between process and socket table snapshots.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, env = "SENSOR_POLL_INTERVAL")]
    poll_interval: std::time::Duration,
    /// Polling collector: directories whose file creations and writes are
    /// reported (repeatable; default: temporary directories and mail spools).
    #[arg(long = "watch", env = "SENSOR_WATCH", value_delimiter = ',')]
    watch: Vec<PathBuf>,
    #[command(flatten)]
    rules: RuleArgs,
}

/// `--capture-opens`, `--capture-connects`.
#[cfg(target_os = "linux")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Capture {
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
struct Listen(Option<std::net::SocketAddr>);

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
enum CollectorChoice {
    /// eBPF, falling back to polling when the programs cannot load (or the
    /// system is not Linux).
    Auto,
    /// eBPF or fail.
    Ebpf,
    /// Polling only.
    Poll,
}

fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let argv: Vec<OsString> = std::env::args_os().collect();
    let cli = Cli::parse_from(&argv);
    match cli.command {
        Command::Run(args) if args.config.is_some() => {
            let path = args.config.clone().expect("a config file");
            match configured(&argv, &path) {
                Ok(args) => run(*args).map(|()| ExitCode::SUCCESS),
                Err(errors) => {
                    eprintln!("{errors}configuration refused");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Run(args) => run(*args).map(|()| ExitCode::SUCCESS),
        Command::Rules(RulesCommand::Check { paths }) => Ok(check(paths)),
        Command::Replay(args) => replay(args).map(|()| ExitCode::SUCCESS),
        #[cfg(target_os = "linux")]
        Command::Install { root } => install(&root),
        Command::Config(ConfigCommand::Check { path }) => {
            let (settings, errors) = config_settings(&path);
            if errors.is_empty() {
                println!("ok: {} settings in {}", settings.len(), path.display());
                Ok(ExitCode::SUCCESS)
            } else {
                eprint!("{}", lines(&errors));
                eprintln!("{} error(s)", errors.len());
                Ok(ExitCode::FAILURE)
            }
        }
    }
}

/// The options a configuration file may set: every long option of `run`
/// but the file itself, each parsed by its own flag's parser.
fn config_options() -> Vec<OptionSpec> {
    let cli = Cli::command();
    let run = cli.find_subcommand("run").expect("the run subcommand");
    run.get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            (long != "config" && long != "help").then(|| OptionSpec {
                long: long.to_owned(),
                switch: matches!(a.get_action(), clap::ArgAction::SetTrue),
                // HookSet parses its own comma list.
                list: a.get_value_delimiter() == Some(',') || long == "hooks",
                repeat: matches!(a.get_action(), clap::ArgAction::Append)
                    && a.get_value_delimiter().is_none(),
            })
        })
        .collect()
}

/// A file's settings, each value checked by its flag's parser; all errors.
fn config_settings(path: &std::path::Path) -> (Vec<Setting>, Vec<ConfigError>) {
    let (settings, mut errors) = config::load(path, &config_options());
    let settings = settings
        .into_iter()
        .filter(|s| {
            let words = ["sensor", "run"].map(OsString::from).into_iter();
            match Cli::try_parse_from(words.chain(s.words.iter().map(OsString::from))) {
                Ok(_) => true,
                Err(e) => {
                    let text = e.to_string();
                    let first = text.lines().next().unwrap_or_default();
                    errors.push(ConfigError {
                        file: path.display().to_string(),
                        line: s.line,
                        col: s.col,
                        message: format!(
                            "{}: {}",
                            s.long.replace('-', "_"),
                            first.trim_start_matches("error: ")
                        ),
                    });
                    false
                }
            }
        })
        .collect::<Vec<Setting>>();
    // Settings that are fine alone may still conflict (`rules` with
    // `no_rules`): parse them together too.
    if errors.is_empty()
        && let Some(first) = settings.first()
    {
        let words = ["sensor", "run"].map(OsString::from).into_iter();
        let all = settings
            .iter()
            .flat_map(|s| s.words.iter().map(OsString::from));
        if let Err(e) = Cli::try_parse_from(words.chain(all)) {
            let text = e.to_string();
            errors.push(ConfigError {
                file: path.display().to_string(),
                line: first.line,
                col: first.col,
                message: text
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .trim_start_matches("error: ")
                    .to_owned(),
            });
        }
    }
    errors.sort_by_key(|e| (e.line, e.col));
    (settings, errors)
}

fn lines(errors: &[ConfigError]) -> String {
    errors.iter().map(|e| format!("{e}\n")).collect()
}

/// `run`'s arguments with the file's settings where neither a flag nor
/// an environment variable set the option.
fn configured(argv: &[OsString], path: &std::path::Path) -> Result<Box<RunArgs>, String> {
    let (settings, errors) = config_settings(path);
    if !errors.is_empty() {
        return Err(lines(&errors));
    }
    let matches = Cli::command().get_matches_from(argv);
    let given = matches.subcommand_matches("run").expect("run");
    let cli = Cli::command();
    let run = cli.find_subcommand("run").expect("run");
    let explicit = |long: &str| {
        run.get_arguments()
            .find(|a| a.get_long() == Some(long))
            .and_then(|a| given.value_source(a.get_id().as_str()))
            .is_some_and(|s| s != clap::parser::ValueSource::DefaultValue)
    };
    // `rules` and `no_rules` choose one thing: either on the command line
    // overrides both in the file.
    let overridden = |long: &str| match long {
        "rules" | "no-rules" => explicit("rules") || explicit("no-rules"),
        _ => explicit(long),
    };
    let mut words: Vec<OsString> = Vec::new();
    for s in &settings {
        if overridden(&s.long) {
            info!(option = %s.long, "the configuration file's value is overridden");
        } else {
            words.extend(s.words.iter().map(OsString::from));
        }
    }
    let at = argv.iter().position(|a| a == "run").expect("run") + 1;
    let mut merged = argv.to_vec();
    merged.splice(at..at, words);
    match Cli::try_parse_from(&merged) {
        Ok(Cli {
            command: Command::Run(args),
        }) => Ok(args),
        Ok(_) => unreachable!("the same subcommand"),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// `sensor install`: places the files, then checks what it placed the way
/// the service will read it.
#[cfg(target_os = "linux")]
fn install(root: &std::path::Path) -> anyhow::Result<ExitCode> {
    use sensor::install;
    let exe = std::env::current_exe().context("finding this binary")?;
    for placed in install::install(root, &exe).context("installing")? {
        println!("{placed}");
    }
    let config = root.join(install::CONFIG_PATH);
    let (_, errors) = config_settings(&config);
    let rules = RuleSource::Paths(vec![root.join(install::RULES_DIR)]).load();
    if !errors.is_empty() || rules.is_err() {
        eprint!("{}", lines(&errors));
        if let Err(e) = rules {
            eprintln!("{e}");
        }
        eprintln!("installed, but the configuration or rules above are refused");
        return Ok(ExitCode::FAILURE);
    }
    if root == std::path::Path::new("/") {
        println!(
            "next: systemctl daemon-reload && systemctl enable --now runtime-sensor
             events: /var/log/runtime-sensor/events.json; settings: /etc/runtime-sensor/sensor.yaml"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn check(paths: Vec<PathBuf>) -> ExitCode {
    let source = if paths.is_empty() {
        RuleSource::Builtin
    } else {
        RuleSource::Paths(paths)
    };
    match source.load() {
        Ok(set) => {
            println!(
                "ok: {} rules and {} sequences in {} packs ({})",
                set.rules.len(),
                set.sequences.len(),
                set.packs.len(),
                set.origin
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s)", errors.0.len());
            ExitCode::FAILURE
        }
    }
}

fn load_rules(source: &RuleSource) -> anyhow::Result<Engine> {
    let set = source
        .load()
        .map_err(|e| anyhow::anyhow!("rules refused:\n{e}"))?;
    Ok(engine_for(set))
}

fn engine_for(set: RuleSet) -> Engine {
    info!(
        rules = set.rules.len(),
        sequences = set.sequences.len(),
        packs = set.packs.len(),
        origin = %set.origin,
        "rules loaded"
    );
    Engine::new(Arc::new(set))
}

fn replay(args: ReplayArgs) -> anyhow::Result<()> {
    let source = args.rules.source();
    let mut engine = source.as_ref().map(load_rules).transpose()?;
    let input: Box<dyn std::io::Read> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(&args.file)
                .with_context(|| format!("opening {}", args.file.display()))?,
        )
    };
    let mut sink = Outputs::writer(Box::new(std::io::stdout()), Encoder::plain());
    let (mut records, mut malformed, mut alerts) = (0u64, 0u64, 0u64);
    let mut pending = Vec::new();
    for (n, line) in BufReader::new(input).split(b'\n').enumerate() {
        let line = line.with_context(|| format!("reading {}", args.file.display()))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record: Record = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(e) => {
                malformed += 1;
                warn!(line = n + 1, error = %e, "malformed record skipped");
                continue;
            }
        };
        records += 1;
        if args.events {
            sink.write(&record)?;
        }
        if let Some(engine) = &mut engine {
            engine.check(&record, &mut |a| pending.push(a));
            for a in pending.drain(..) {
                sink.write(&a)?;
                alerts += 1;
            }
        }
    }
    sink.flush()?;
    info!(records, alerts, malformed, "replay done");
    Ok(())
}

/// Every source is in place: `/readyz` says so, and the ready file is
/// written if asked.
fn ready(args: &RunArgs, metrics: &Metrics) -> anyhow::Result<()> {
    if let Some(ready) = &args.ready_file {
        std::fs::write(ready, format!("{}\n", std::process::id()))
            .with_context(|| format!("writing ready file {}", ready.display()))?;
    }
    metrics.health().set_ready();
    Ok(())
}

/// SIGINT or SIGTERM (Ctrl-C where there are no signals).
#[cfg(unix)]
fn stop_requested() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = sigint.recv() => {}
            _ = sigterm.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn stop_requested() -> anyhow::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// SIGHUP; never on systems without it (restart to reload there).
struct ReloadSignal(#[cfg(unix)] tokio::signal::unix::Signal);

impl ReloadSignal {
    fn new() -> anyhow::Result<Self> {
        #[cfg(unix)]
        return Ok(Self(tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::hangup(),
        )?));
        #[cfg(not(unix))]
        Ok(Self())
    }

    async fn recv(&mut self) -> Option<()> {
        #[cfg(unix)]
        return self.0.recv().await;
        #[cfg(not(unix))]
        std::future::pending().await
    }
}

/// Reloads the rules on SIGHUP and sends each good set; a bad one is
/// refused and the previous set stays active.
fn reload_on_sighup(
    mut sighup: ReloadSignal,
    source: Option<RuleSource>,
    metrics: Metrics,
) -> tokio::sync::mpsc::Receiver<Arc<RuleSet>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    if let Some(source) = source {
        tokio::spawn(async move {
            while sighup.recv().await.is_some() {
                match source.load() {
                    Ok(set) => {
                        metrics.rule_reload(true);
                        metrics.rules_active(set.rules.len() + set.sequences.len());
                        if tx.send(Arc::new(set)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        metrics.rule_reload(false);
                        error!("rule reload refused; the previous rules stay active:\n{e}")
                    }
                }
            }
        });
    }
    rx
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let metrics = Metrics::new();
        if let Listen(Some(address)) = args.metrics_address {
            // Liveness fails when the collector loop stops turning: it goes
            // round at least once per poll interval.
            let stall = (args.poll_interval * 5).max(std::time::Duration::from_secs(30));
            let bound = endpoint::start(address, metrics.clone(), stall)
                .with_context(|| format!("serving metrics on {address} (--metrics-address)"))?;
            info!(address = %bound, "metrics endpoint listening: /metrics, /healthz, /readyz");
        }
        let node = match &args.node_name {
            Some(n) => n.clone(),
            None => sysinfo::System::host_name().unwrap_or_else(|e| {
                warn!(error = %e, "no host name; records say node \"unknown\" (--node-name sets one)");
                "unknown".into()
            }),
        };
        let outputs = Outputs::open(&args.output, &output_options(&args, node), &metrics)
            .context("opening outputs (--output)")?;
        let mut sink = MeteredSink::new(Box::new(outputs) as Box<dyn Sink + Send>, metrics.clone());
        // Handlers first: a SIGTERM that arrives while the verifier is busy
        // (about a second) must still stop the sensor cleanly afterwards.
        let shutdown = stop_requested()?;
        let sighup = ReloadSignal::new()?;
        // A bad rule set is refused before anything is loaded.
        let rule_source = args.rules.source();
        let engine = rule_source.as_ref().map(load_rules).transpose()?;
        if let Some(e) = &engine {
            let set = e.rules();
            metrics.rules_active(set.rules.len() + set.sequences.len());
        }
        let reload_metrics = metrics.clone();
        let detection = |engine: Option<Engine>| {
            engine.map(|engine| {
                Detection::new(
                    engine,
                    reload_on_sighup(sighup, rule_source, reload_metrics),
                )
            })
        };
        #[cfg(target_os = "linux")]
        if let Some(loaded) = load_ebpf(&args)? {
            let stats = run_ebpf(
                &args,
                &metrics,
                loaded,
                detection(engine),
                &mut sink,
                shutdown,
            )
            .await?;
            stopped(stats);
            return Ok(());
        }
        #[cfg(not(target_os = "linux"))]
        if args.collector == CollectorChoice::Ebpf {
            anyhow::bail!("the eBPF collector needs Linux; this system can only poll");
        }
        let stats = run_poll(&args, &metrics, detection(engine), &mut sink, shutdown).await?;
        stopped(stats);
        Ok(())
    })
}

fn output_options(args: &RunArgs, node: String) -> OutputOptions {
    OutputOptions {
        format: args.format,
        node,
        rotation: Rotation {
            max_bytes: args.rotate_size,
            keep: args.rotate_keep,
        },
        queue: QueueOptions {
            capacity: args.queue_size as usize,
            batch_records: args.batch_size as usize,
            batch_bytes: 4 << 20,
            batch_wait: args.batch_wait,
            drain: args.output_drain,
        },
        webhook_headers: args.webhook_headers.clone(),
        webhook_ca: args.webhook_ca.clone(),
        timeout: args.output_timeout,
        facility: args.syslog_facility,
    }
}

/// The outputs, for logs.
fn outputs(args: &RunArgs) -> String {
    let names: Vec<String> = args.output.iter().map(Target::to_string).collect();
    names.join(",")
}

fn stopped(stats: RunStats) {
    info!(
        events = stats.events,
        alerts = stats.alerts,
        lost = stats.lost,
        filtered_in_kernel = stats.filtered,
        "sensor stopped"
    );
}

/// The eBPF programs as `--collector` asks: `None` means poll.
#[cfg(target_os = "linux")]
fn load_ebpf(args: &RunArgs) -> anyhow::Result<Option<Loaded>> {
    let loaded = load_ebpf_as_asked(args);
    release_freed_heap();
    loaded
}

/// Returns the heap that loading freed (the parsed kernel BTF, tens of
/// MiB) to the system. glibc keeps freed memory for reuse, so it would
/// otherwise stay in the sensor's RSS for its whole life. musl (the
/// image's build) returns it by itself.
#[cfg(target_os = "linux")]
fn release_freed_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory; it has no
    // preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(target_os = "linux")]
fn load_ebpf_as_asked(args: &RunArgs) -> anyhow::Result<Option<Loaded>> {
    let opts = load_options(args);
    Ok(match args.collector {
        CollectorChoice::Poll => None,
        CollectorChoice::Ebpf => Some(loader::load(&opts)?),
        CollectorChoice::Auto => match loader::load(&opts) {
            Ok(loaded) => Some(loaded),
            Err(e) if !e.is_environment() => return Err(e.into()),
            Err(e) => {
                warn!(reason = %format!("{e:#}"), "eBPF programs cannot load; falling back to the polling collector (--collector ebpf makes this an error)");
                None
            }
        },
    })
}

#[cfg(target_os = "linux")]
fn load_options(args: &RunArgs) -> LoadOptions {
    LoadOptions {
        hooks: args.hooks,
        tier: args.tier,
        ring_bytes: args.ring_bytes,
        rate_limit: args.rate_limit,
        ..Default::default()
    }
}

#[cfg(target_os = "linux")]
async fn run_ebpf(
    args: &RunArgs,
    metrics: &Metrics,
    loaded: Loaded,
    detection: Option<Detection>,
    sink: &mut dyn Sink,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunStats> {
    metrics.collector("ebpf");
    for a in &loaded.attached {
        info!(tracepoint = a.hook.tracepoint, tier = %a.tier, "hook attached");
        metrics.hook_attached(a.hook.tracepoint, &a.tier.to_string());
    }
    for h in &loaded.lsm {
        info!(lsm_hook = h.name, tier = %"lsm", adds = h.adds, "hook attached");
        metrics.hook_attached(h.name, "lsm");
    }
    for (h, reason) in &loaded.lsm_missing {
        warn!(lsm_hook = h.name, missing = h.adds, %reason, "LSM tier unavailable, running without it");
    }
    // After attaching: whatever starts during the /proc scan arrives as events.
    let enricher = Enricher::new(loaded.v1_controller);
    let mut collector = EbpfCollector::new(loaded, enricher)?
        .with_egress_interval(args.egress_interval)
        .with_metrics(metrics.clone());
    let by_rules = |c: Option<Capture>| match c {
        Some(c) => c == Capture::Rules,
        None => detection.is_some(),
    };
    let (opens_by_rules, connects_by_rules) = (
        by_rules(args.capture_opens),
        by_rules(args.capture_connects),
    );
    if let Some(d) = detection {
        collector = collector.with_rules(d);
    }
    let collector = collector.capture(opens_by_rules, connects_by_rules)?;
    ready(args, metrics)?;
    info!(hooks = %args.hooks, output = %outputs(args), format = ?args.format, "sensor running");
    collector.run(sink, shutdown).await
}

async fn run_poll(
    args: &RunArgs,
    metrics: &Metrics,
    detection: Option<Detection>,
    sink: &mut dyn Sink,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<RunStats> {
    let watch = if args.watch.is_empty() {
        PollOptions::default_watch()
    } else {
        args.watch.clone()
    };
    let poll_opts = PollOptions {
        interval: args.poll_interval,
        watch,
    };
    info!(interval = ?poll_opts.interval, watch = ?poll_opts.watch, "polling collector");
    metrics.collector("poll");
    let mut collector = PollCollector::new(poll_opts)?;
    if let Some(d) = detection {
        collector = collector.with_rules(d);
    }
    ready(args, metrics)?;
    info!(collector = "poll", output = %outputs(args), format = ?args.format, "sensor running");
    collector.run(sink, shutdown).await
}
