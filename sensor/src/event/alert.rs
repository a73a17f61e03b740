//! Alerts: what a rule match writes, and what it says about its rule.
//! Records like any other (`kind: alert`), so the schema defines them; the
//! rule engine only fills them in.
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Attributed, Process, Record};
use crate::container::ContainerRef;

/// An alert: the rule, where it happened, and the events that made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alert {
    /// The rule that fired.
    pub rule: Arc<RuleInfo>,
    /// For sequences: the step names, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<String>,
    /// The container (`id: host` for the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Arc<ContainerRef>>,
    /// The process of the last event, with its ancestry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<Process>,
    /// The rule's output fields, from the last event.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// Every event of the match, oldest first.
    pub evidence: Vec<Record>,
}

/// An alert is about its container; its process is the evidence's, written
/// under the alert's own `process`, not an acting process of the alert.
impl Attributed for Box<Alert> {
    fn container(&self) -> Option<&Arc<ContainerRef>> {
        self.container.as_ref()
    }
}

/// What an alert says about its rule.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RuleInfo {
    /// Rule id.
    pub id: String,
    /// One line.
    pub title: String,
    /// Severity.
    pub severity: Severity,
    /// Pack id.
    pub pack: String,
    /// MITRE technique.
    pub technique: Technique,
    /// What it means.
    pub description: String,
}

/// Rule severity, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Context only.
    Info,
    /// Worth a look.
    Low,
    /// Likely malicious in most fleets.
    Medium,
    /// Act now.
    High,
    /// Act now, widely.
    Critical,
}

impl Severity {
    /// The name rules and alerts use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// MITRE ATT&CK technique of a pack.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Technique {
    /// e.g. T1560
    pub id: String,
    /// e.g. Archive Collected Data
    pub name: String,
    /// e.g. collection
    pub tactic: String,
}
