//! Evaluation: every record against the rules indexed for its kind, and
//! sequence progress per container. Alerts are records of their own.
use std::{collections::HashMap, sync::Arc};

use super::{
    RuleSet,
    fields::{Field, Prepared, Val},
    interest::{KernelFilter as _, OpenFilter},
};
use crate::{
    event::{Alert, Body, Kind, Record, RuleInfo, SCHEMA_VERSION},
    text::Text,
};

/// Counters for what the engine dropped or could not track.
#[derive(Debug, Default, Clone, Copy)]
pub struct EngineStats {
    /// Records evaluated.
    pub evaluated: u64,
    /// Of those, opens no rule or sequence step could match, decided from
    /// their path and flags alone (as the kernel's open filter decides).
    pub opens_passed_over: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Sequences not started because the state cap was reached.
    pub sequence_state_full: u64,
    /// Sequences that expired before completing.
    pub sequence_expired: u64,
}

/// Partial match of one sequence in one container.
struct Progress {
    next: usize,
    first_ns: u64,
    evidence: Vec<Record>,
}

/// Most containers tracked at once per sequence rule; beyond that new
/// sequences are counted, not started (bounded memory under a flood).
pub const SEQUENCE_STATE_CAP: usize = 4096;

/// Runs a rule set over records.
pub struct Engine {
    set: Arc<RuleSet>,
    /// Rule indexes per kind bit position.
    by_kind: Vec<Vec<usize>>,
    seq_by_kind: Vec<Vec<usize>>,
    /// Per sequence rule, the kinds each step can match.
    step_kinds: Vec<Vec<u32>>,
    /// The opens any rule or step could match: the rest skip evaluation.
    /// The kernel drops most others already; this serves `--capture-opens
    /// all`, io_uring opens and the polling collector.
    opens: OpenFilter,
    prepared: Prepared,
    /// Per sequence rule: container id -> progress.
    /// Looked up for every record a step could match; SipHash cost more
    /// than the rest of the lookup.
    progress: Vec<foldhash::HashMap<Box<str>, Progress>>,
    /// What was dropped.
    pub stats: EngineStats,
}

impl Engine {
    /// Indexes a rule set.
    pub fn new(set: Arc<RuleSet>) -> Self {
        let mut by_kind = vec![Vec::new(); Kind::ALL.len()];
        let mut seq_by_kind = vec![Vec::new(); Kind::ALL.len()];
        for (i, r) in set.rules.iter().enumerate() {
            let kinds = r.pred.kinds();
            for (k, list) in by_kind.iter_mut().enumerate() {
                if kinds & (1 << k) != 0 {
                    list.push(i);
                }
            }
        }
        for (i, s) in set.sequences.iter().enumerate() {
            let kinds = s.steps.iter().fold(0, |a, (_, p)| a | p.kinds());
            for (k, list) in seq_by_kind.iter_mut().enumerate() {
                if kinds & (1 << k) != 0 {
                    list.push(i);
                }
            }
        }
        let step_kinds = set
            .sequences
            .iter()
            .map(|s| s.steps.iter().map(|(_, p)| p.kinds()).collect())
            .collect();
        let progress = set.sequences.iter().map(|_| HashMap::default()).collect();
        let memo_slots = set.memo_slots;
        Self {
            opens: OpenFilter::of_rules(&set),
            set,
            by_kind,
            seq_by_kind,
            step_kinds,
            prepared: Prepared::new(memo_slots),
            progress,
            stats: EngineStats::default(),
        }
    }

    /// The loaded rules.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.set
    }

    /// Swaps in a new rule set (SIGHUP); sequence progress starts over.
    pub fn replace(&mut self, set: Arc<RuleSet>) {
        let stats = self.stats;
        *self = Self::new(set);
        self.stats = stats;
    }

    /// Evaluates one record; alerts go to `emit`.
    pub fn check(&mut self, rec: &Record, emit: &mut dyn FnMut(Record)) {
        let kind = rec.kind();
        if !kind.ruled() {
            return; // loss records, alerts
        }
        let (bit, k) = (kind.bit(), kind.index());
        self.stats.evaluated += 1;
        if self.by_kind[k].is_empty() && self.seq_by_kind[k].is_empty() {
            return;
        }
        // A sequence waiting in this container sees its expiry on a later
        // record instead: the only difference skipping makes.
        if let Body::Open(e) = &rec.body
            && !self.opens.keeps(&e.data.open)
        {
            self.stats.opens_passed_over += 1;
            return;
        }
        self.prepared.reset(bit, rec);
        for &i in &self.by_kind[k] {
            let rule = &self.set.rules[i];
            if rule.pred.eval(rec, &self.prepared) {
                self.stats.alerts += 1;
                emit(alert(
                    &rule.info,
                    Vec::new(),
                    &rule.output,
                    &self.prepared,
                    vec![rec.clone()],
                ));
            }
        }
        for j in 0..self.seq_by_kind[k].len() {
            self.advance(self.seq_by_kind[k][j], bit, rec, emit);
        }
    }

    fn advance(&mut self, i: usize, bit: u32, rec: &Record, emit: &mut dyn FnMut(Record)) {
        let seq = &self.set.sequences[i];
        // A step whose condition rules out this kind is not evaluated: a
        // sequence waiting for an exec sees every open in between.
        let kinds = &self.step_kinds[i];
        let prepared = &self.prepared;
        let matches = |step: usize| kinds[step] & bit != 0 && seq.steps[step].1.eval(rec, prepared);
        let key = rec.container().map_or("unknown", |c| c.id.as_str());
        let within = seq.within.as_nanos() as u64;
        let table = &mut self.progress[i];
        if let Some(p) = table.get_mut(key) {
            if rec.boot_ns.saturating_sub(p.first_ns) > within {
                table.remove(key);
                self.stats.sequence_expired += 1;
            } else {
                if !matches(p.next) {
                    // A newer first step restarts the window from it.
                    if p.next == 1 && matches(0) {
                        p.first_ns = rec.boot_ns;
                        p.evidence[0] = rec.clone();
                    }
                    return;
                }
                p.evidence.push(rec.clone());
                p.next += 1;
                if p.next < seq.steps.len() {
                    return;
                }
                let done = table.remove(key).map(|p| p.evidence).unwrap_or_default();
                self.stats.alerts += 1;
                let names = seq.steps.iter().map(|(n, _)| n.clone()).collect();
                emit(alert(&seq.info, names, &seq.output, &self.prepared, done));
                return;
            }
        }
        if !matches(0) {
            return;
        }
        if table.len() >= SEQUENCE_STATE_CAP {
            let before = table.len();
            table.retain(|_, p| rec.boot_ns.saturating_sub(p.first_ns) <= within);
            self.stats.sequence_expired += (before - table.len()) as u64;
            if table.len() >= SEQUENCE_STATE_CAP {
                self.stats.sequence_state_full += 1;
                return;
            }
        }
        table.insert(
            key.into(),
            Progress {
                next: 1,
                first_ns: rec.boot_ns,
                evidence: vec![rec.clone()],
            },
        );
    }
}

fn alert(
    info: &Arc<RuleInfo>,
    steps: Vec<String>,
    output: &[(&'static str, Field)],
    prep: &Prepared,
    evidence: Vec<Record>,
) -> Record {
    let last = evidence.last().expect("an alert has evidence");
    let mut out = serde_json::Map::new();
    for (name, f) in output {
        let mut values = Vec::new();
        f.any(last, prep, &mut |v| {
            values.push(json(v));
            false
        });
        let value = match values.len() {
            0 => continue,
            1 if !multi_valued(*f) => values.pop().unwrap_or_default(),
            _ => serde_json::Value::Array(values),
        };
        out.insert((*name).to_owned(), value);
    }
    Record {
        schema: SCHEMA_VERSION,
        source: last.source,
        time: last.time.clone(),
        boot_ns: last.boot_ns,
        body: Body::Alert(Box::new(Alert {
            rule: info.clone(),
            steps,
            container: last.container().cloned(),
            process: last.process().cloned(),
            fields: out,
            evidence,
        })),
    }
}

fn multi_valued(f: Field) -> bool {
    matches!(
        f,
        Field::ProcArgs
            | Field::AncestorExe
            | Field::AncestorName
            | Field::AncestorCmdline
            | Field::MountSource
            | Field::MountDestination
            | Field::MountRwSource
            | Field::OpenFlags
    )
}

fn json(v: Val<'_>) -> serde_json::Value {
    match v {
        Val::Str(s) => serde_json::to_value(Text(s.to_vec())).unwrap_or_default(),
        Val::Int(i) => i.into(),
        Val::Bool(b) => b.into(),
        Val::Ip(a) => a.to_string().into(),
    }
}
