//! Event sources. `ebpf` drains the kernel ring buffer; `poll` is the
//! fallback for hosts where the programs cannot load, with the same schema
//! and rules.
#[cfg(target_os = "linux")]
pub mod ebpf;
#[cfg(target_os = "linux")]
pub mod egress;
#[cfg(target_os = "linux")]
pub mod losses;
pub mod poll;

use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tracing::info;

use crate::{
    event::Record,
    output::Sink,
    rules::{RuleSet, engine::Engine},
};

/// The rules stage every collector shares: evaluates each record written
/// and writes the alerts it raises; rule sets arriving on `updates` (already
/// validated by the SIGHUP reloader) replace the active one.
pub struct Detection {
    engine: Engine,
    updates: mpsc::Receiver<Arc<RuleSet>>,
    alerts: Vec<Record>,
}

impl Detection {
    /// Rules from `engine`, replaced by what `updates` sends.
    pub fn new(engine: Engine, updates: mpsc::Receiver<Arc<RuleSet>>) -> Self {
        Self {
            engine,
            updates,
            alerts: Vec::new(),
        }
    }

    /// Writes the alerts `record` raises; returns how many.
    pub fn check(&mut self, sink: &mut dyn Sink, record: &Record) -> anyhow::Result<u64> {
        let alerts = &mut self.alerts;
        self.engine.check(record, &mut |a| alerts.push(a));
        let n = self.alerts.len() as u64;
        for alert in self.alerts.drain(..) {
            sink.write(&alert).context("writing an alert")?;
        }
        Ok(n)
    }

    /// The next rule set sent, or never without a detection stage.
    pub async fn next_update(detection: &mut Option<Self>) -> Arc<RuleSet> {
        match detection {
            Some(d) => match d.updates.recv().await {
                Some(set) => set,
                // The reloader is gone: no more updates.
                None => std::future::pending().await,
            },
            None => std::future::pending().await,
        }
    }

    /// The active rules.
    pub fn rules(&self) -> &Arc<RuleSet> {
        self.engine.rules()
    }

    /// Makes `set` the active rules.
    pub fn replace(&mut self, set: Arc<RuleSet>) {
        info!(
            rules = set.rules.len(),
            sequences = set.sequences.len(),
            "rules reloaded"
        );
        self.engine.replace(set);
    }

    /// Logs the engine's counters at shutdown.
    pub fn log_stats(&self) {
        let s = self.engine.stats;
        info!(
            evaluated = s.evaluated,
            opens_passed_over = s.opens_passed_over,
            alerts = s.alerts,
            sequence_state_full = s.sequence_state_full,
            sequence_expired = s.sequence_expired,
            "detection stopped"
        );
    }
}

/// Counters for the run, returned at shutdown.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunStats {
    /// Records written.
    pub events: u64,
    /// Records lost (kernel and userspace).
    pub lost: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Events the kernel dropped because no rule could match them.
    pub filtered: u64,
}
