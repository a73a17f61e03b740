//! What every source does with a record: write it to the outputs, run the
//! rules on it, write the alerts it raised right after it. The eBPF and
//! polling collectors and `sensor replay` all go through [`write_and_detect`],
//! so an alert always follows its evidence in the stream.
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::mpsc;
use tracing::info;

use crate::{
    event::Record,
    output::Sink,
    rules::{RuleSet, engine::Engine},
};

/// Writes `record`, then the alerts it raises when rules are loaded;
/// returns how many alerts.
pub fn write_and_detect(
    sink: &mut dyn Sink,
    detection: Option<&mut Detection>,
    record: &Record,
) -> anyhow::Result<u64> {
    sink.write(record).context("writing an event")?;
    match detection {
        Some(d) => d.check(sink, record),
        None => Ok(0),
    }
}

/// The rules stage: evaluates each record written and writes the alerts it
/// raises; rule sets arriving on `updates` (already validated by the SIGHUP
/// reloader) replace the active one.
pub struct Detection {
    engine: Engine,
    updates: Option<mpsc::Receiver<Arc<RuleSet>>>,
    alerts: Vec<Record>,
}

impl Detection {
    /// Rules from `engine`, for good.
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            updates: None,
            alerts: Vec::new(),
        }
    }

    /// Replaced by what `updates` sends.
    pub fn with_updates(mut self, updates: mpsc::Receiver<Arc<RuleSet>>) -> Self {
        self.updates = Some(updates);
        self
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
        match detection.as_mut().and_then(|d| d.updates.as_mut()) {
            Some(updates) => match updates.recv().await {
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
        set.warn_if_empty();
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
