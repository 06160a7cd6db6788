//! A unit's deployment history: one [`DeploymentRecord`] per deployment, as
//! `state.json` keeps it (the last 50 per unit), as `status` shows the last one
//! and `deployments` lists them, and as a deployment's waiters receive it.
//!
//! Invariants:
//! - The JSON shape is the record's field names; a field that a kind of record
//!   does not have is left out, never written as `null`: the deployment in
//!   progress has neither `outcome`, `reason` nor `ended`; only a deployment that
//!   ran to an end (completed or failed) has `failures`.
//! - Times are RFC 3339 with microseconds, as `pantstack_rt::clock` writes them.

use serde::{Deserialize, Serialize};

/// How a deployment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentOutcome {
    /// Its revision serves.
    Completed,
    /// It stopped short (a failed build, the circuit breaker).
    Failed,
    /// Recorded while it still ran.
    InProgress,
    /// A newer deployment replaced it.
    Superseded,
    /// Its supervisor stopped (or died) before it ended.
    Interrupted,
}

impl DeploymentOutcome {
    /// The outcome's name on the wire and in `state.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentOutcome::Completed => "completed",
            DeploymentOutcome::Failed => "failed",
            DeploymentOutcome::InProgress => "in_progress",
            DeploymentOutcome::Superseded => "superseded",
            DeploymentOutcome::Interrupted => "interrupted",
        }
    }
}

/// One deployment of a unit: in progress (no `outcome`) or ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeploymentRecord {
    /// The deployment's number (one sequence per environment).
    pub id: u32,
    /// The revision it deploys.
    pub revision: u32,
    /// The revision that served when it began.
    pub from: u32,
    /// `start`, `deploy` or `rollback`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<DeploymentOutcome>,
    /// Why it ended so (empty for a completed one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The task failures the rollout counted (deployments that ran to an end).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures: Option<Vec<String>>,
    pub started: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
}

impl DeploymentRecord {
    /// The record of a deployment in progress.
    pub fn in_progress(id: u32, revision: u32, from: u32, kind: &str, started: String) -> Self {
        DeploymentRecord {
            id,
            revision,
            from,
            kind: kind.to_string(),
            started,
            ..Default::default()
        }
    }

    /// This deployment, ended at `ended` with `outcome` for `reason`.
    pub fn ended(
        self,
        outcome: DeploymentOutcome,
        reason: String,
        ended: String,
    ) -> DeploymentRecord {
        DeploymentRecord {
            outcome: Some(outcome),
            reason: Some(reason),
            ended: Some(ended),
            ..self
        }
    }

    /// Whether it ended with its revision serving.
    pub fn completed(&self) -> bool {
        self.outcome == Some(DeploymentOutcome::Completed)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn each_kind_of_record_has_its_own_fields_on_the_wire() {
        let started = "2026-01-01T00:00:00.000000Z".to_string();
        let ended = "2026-01-01T00:00:05.000000Z".to_string();
        let running = DeploymentRecord::in_progress(3, 2, 1, "deploy", started.clone());
        assert_eq!(
            serde_json::to_value(&running).unwrap(),
            json!({"id": 3, "revision": 2, "from": 1, "kind": "deploy", "started": started})
        );
        let stopped = running.clone().ended(
            DeploymentOutcome::Interrupted,
            "stopped".into(),
            ended.clone(),
        );
        assert_eq!(
            serde_json::to_value(&stopped).unwrap(),
            json!({"id": 3, "revision": 2, "from": 1, "kind": "deploy", "started": started,
                   "outcome": "interrupted", "reason": "stopped", "ended": ended})
        );
        let done = DeploymentRecord {
            failures: Some(vec!["task 4 exited".into()]),
            ..running.ended(DeploymentOutcome::Completed, String::new(), ended.clone())
        };
        let v = serde_json::to_value(&done).unwrap();
        assert_eq!(
            v,
            json!({"id": 3, "revision": 2, "from": 1, "kind": "deploy", "started": started,
                   "outcome": "completed", "reason": "", "failures": ["task 4 exited"], "ended": ended})
        );
        assert!(done.completed());
        assert_eq!(serde_json::from_value::<DeploymentRecord>(v).unwrap(), done);
        for o in [
            DeploymentOutcome::Completed,
            DeploymentOutcome::Failed,
            DeploymentOutcome::InProgress,
            DeploymentOutcome::Superseded,
            DeploymentOutcome::Interrupted,
        ] {
            assert_eq!(serde_json::to_value(o).unwrap(), json!(o.as_str()));
        }
    }
}
