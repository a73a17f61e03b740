//! `sensor`: eBPF runtime-security sensor.
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sensor::{
    collector::ebpf::EbpfCollector,
    enrich::Enricher,
    loader::{
        self, LoadOptions,
        hooks::{HookSet, TierChoice},
    },
    output,
};
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;

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
    /// Load the kernel hooks and stream events until SIGINT/SIGTERM.
    Run(RunArgs),
}

#[derive(Parser)]
struct RunArgs {
    /// Where events go: `-` for stdout, or a file (appended).
    #[arg(long, short, default_value = "-", env = "SENSOR_OUTPUT")]
    output: PathBuf,
    /// Hook families: comma-separated exec, open, connect, cgroup, or all.
    #[arg(long, default_value = "all", env = "SENSOR_HOOKS")]
    hooks: HookSet,
    /// Program tier: the best each hook loads with, or one forced.
    #[arg(long, value_enum, default_value_t = TierChoice::Auto, env = "SENSOR_TIER")]
    tier: TierChoice,
    /// Ring buffer size in bytes (power of two).
    #[arg(long, default_value_t = 8 << 20, env = "SENSOR_RING_BYTES")]
    ring_bytes: u32,
    /// Created once every hook is attached (for supervisors and tests).
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(args),
    }
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let opts = LoadOptions {
        hooks: args.hooks,
        tier: args.tier,
        ring_bytes: args.ring_bytes,
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut sink = output::open(&args.output)
            .with_context(|| format!("opening output {}", args.output.display()))?;
        // Handlers first: a SIGTERM that arrives while the verifier is busy
        // (about a second) must still stop the sensor cleanly afterwards.
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let loaded = loader::load(&opts)?;
        for a in &loaded.attached {
            info!(tracepoint = a.hook.tracepoint, tier = %a.tier, "hook attached");
        }
        // After attaching: whatever starts during the /proc scan arrives as events.
        let enricher = Enricher::new(loaded.v1_controller);
        let collector = EbpfCollector::new(loaded, enricher)?;
        if let Some(ready) = &args.ready_file {
            std::fs::write(ready, format!("{}\n", std::process::id()))
                .with_context(|| format!("writing ready file {}", ready.display()))?;
        }
        info!(hooks = %opts.hooks, output = %args.output.display(), "sensor running");
        let stats = collector
            .run(sink.as_mut(), async {
                tokio::select! {
                    _ = sigint.recv() => {}
                    _ = sigterm.recv() => {}
                }
            })
            .await?;
        info!(events = stats.events, lost = stats.lost, "sensor stopped");
        Ok(())
    })
}
