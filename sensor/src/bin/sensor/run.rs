//! `sensor run`: the metrics endpoint, the outputs, the rules (reloaded on
//! SIGHUP), then the eBPF collector or the polling one, until SIGINT or
//! SIGTERM.
use std::{future::Future, sync::Arc};

use anyhow::Context as _;
#[cfg(target_os = "linux")]
use sensor::{
    collector::ebpf::EbpfCollector,
    enrich::Enricher,
    loader::{self, LoadOptions, Loaded},
};
use sensor::{
    collector::{
        RunStats,
        poll::{PollCollector, PollOptions},
    },
    endpoint,
    metrics::Metrics,
    output::{MeteredSink, OutputOptions, Outputs, Rotation, Sink, Target, queue::QueueOptions},
    pipeline::Detection,
    rules::{RuleSet, RuleSource, engine::Engine},
};
use tracing::{error, info, warn};

#[cfg(target_os = "linux")]
use crate::args::Capture;
use crate::args::{CollectorChoice, Listen, RunArgs};

/// The rules `source` names, or every reason they are refused.
pub(crate) fn load_engine(source: &RuleSource) -> anyhow::Result<Engine> {
    source
        .engine()
        .map_err(|e| anyhow::anyhow!("rules refused:\n{e}"))
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
                // Compiling is CPU work: off the runtime's worker threads.
                let compiling = source.clone();
                let loaded = match tokio::task::spawn_blocking(move || compiling.load()).await {
                    Ok(loaded) => loaded,
                    Err(e) => {
                        metrics.rule_reload(false);
                        error!("rule reload failed; the previous rules stay active: {e}");
                        continue;
                    }
                };
                match loaded {
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

pub(crate) fn run(args: RunArgs) -> anyhow::Result<()> {
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
        sensor::own_files::protect(&own_files(&args));
        // Handlers first: a SIGTERM that arrives while the verifier is busy
        // (about a second) must still stop the sensor cleanly afterwards.
        let shutdown = stop_requested()?;
        let sighup = ReloadSignal::new()?;
        // A bad rule set is refused before anything is loaded.
        let rule_source = args.rules.source();
        let engine = rule_source.as_ref().map(load_engine).transpose()?;
        if let Some(e) = &engine {
            let set = e.rules();
            metrics.rules_active(set.rules.len() + set.sequences.len());
        }
        let reload_metrics = metrics.clone();
        let detection = |engine: Option<Engine>| {
            engine.map(|engine| {
                Detection::new(engine)
                    .with_updates(reload_on_sighup(sighup, rule_source, reload_metrics))
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

/// What nobody else should write (`open.sensor_file`): this binary, the
/// configuration, the rule files, the output files.
fn own_files(args: &RunArgs) -> Vec<std::path::PathBuf> {
    let mut files: Vec<std::path::PathBuf> = std::env::current_exe().into_iter().collect();
    files.extend(args.config.iter().cloned());
    files.extend(args.rules.rules.iter().cloned());
    files.extend(args.output.iter().filter_map(|t| match t {
        Target::File(p) => Some(p.clone()),
        _ => None,
    }));
    files
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
