//! Detection: rule packs (YAML) compiled at load into predicates, evaluated
//! on every record, indexed by record kind; sequence rules correlate steps
//! within a container and a time window. docs/RULES.md is the reference.
//!
//! - `source`: files -> definitions, with positions
//! - `condition`: the condition language -> AST
//! - `compile`: AST -> predicates (lists, macros, types, regexes, globs)
//! - `fields`: what a field name reads from a record
//! - `engine`: evaluation, sequences, alerts
//! - `interest`: which opens and connects the rules could match, for the
//!   kernel's filters
//! - `memo`: conditions on the acting process, evaluated once per process
//! - `load`: the built-in set, rule files and directories -> a [`RuleSet`]
pub mod compile;
pub mod condition;
pub mod engine;
pub mod fields;
pub mod interest;
mod load;
pub mod memo;
pub mod source;
#[cfg(test)]
mod tests;

use std::{fmt, sync::Arc, time::Duration};

use compile::Pred;
use fields::Field;
pub use load::{BUILTIN, RuleSource, compile_files};

use crate::{
    event::{RuleInfo, Technique},
    located::LocatedError,
};

/// A rule set that failed to load: every error found, in file order.
#[derive(Debug, Clone)]
pub struct LoadErrors(pub Vec<LocatedError>);

/// How many errors a refused set shows in a log line; `sensor rules check`
/// lists them all.
const SHOWN_ERRORS: usize = 100;

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().take(SHOWN_ERRORS).enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        if let Some(more) = self.0.len().checked_sub(SHOWN_ERRORS).filter(|n| *n > 0) {
            write!(
                f,
                "\n... and {more} more (`sensor rules check` lists them all)"
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

/// A compiled single-event rule.
pub struct Rule {
    /// Shown in alerts.
    pub info: Arc<RuleInfo>,
    /// Condition and not any exception.
    pub pred: Pred,
    /// Fields shown in the alert.
    pub output: Vec<(&'static str, Field)>,
}

/// A compiled sequence rule.
pub struct Sequence {
    /// Shown in alerts.
    pub info: Arc<RuleInfo>,
    /// Step names and predicates, in order.
    pub steps: Vec<(String, Pred)>,
    /// All steps within this of the first.
    pub within: Duration,
    /// Fields shown in the alert.
    pub output: Vec<(&'static str, Field)>,
}

/// A pack's text for analysts.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PackInfo {
    /// Pack id.
    pub id: String,
    /// Technique.
    pub technique: Technique,
    /// The strategy's goal.
    pub goal: Option<String>,
    /// Its blind spots.
    pub blind_spots: Option<String>,
    /// What to do.
    pub response: Option<String>,
}

/// Everything loaded, compiled, ready to evaluate.
pub struct RuleSet {
    /// Single-event rules.
    pub rules: Vec<Rule>,
    /// Sequence rules.
    pub sequences: Vec<Sequence>,
    /// Packs by id.
    pub packs: Vec<PackInfo>,
    /// Where the rules came from.
    pub origin: String,
    /// [`Pred::Memo`](compile::Pred::Memo) slots the conditions use.
    pub memo_slots: usize,
}

impl RuleSet {
    /// Nothing to detect: only loaded when a file says `rules: []`.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.sequences.is_empty()
    }

    /// Says so in the log when the set detects nothing.
    pub fn warn_if_empty(&self) {
        if self.is_empty() {
            tracing::warn!(origin = %self.origin, "the rule set is empty (`rules: []`): nothing will be detected");
        }
    }

    /// Every condition a record is tested against: each rule's, then each
    /// sequence step's.
    pub fn conditions(&self) -> impl Iterator<Item = &compile::Pred> {
        self.rules.iter().map(|r| &r.pred).chain(
            self.sequences
                .iter()
                .flat_map(|s| s.steps.iter().map(|(_, p)| p)),
        )
    }
}
