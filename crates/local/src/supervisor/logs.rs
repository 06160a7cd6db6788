//! Log retention while the supervisor runs: every [`KEEP_LOGS_EVERY`], each log
//! group (`crate::logs`) is held to its unit's `Retention`, off the loop (a
//! blocking job), with the streams its tasks and builds still write spared.

use super::*;
use std::collections::BTreeSet;

/// How often the groups are checked.
pub const KEEP_LOGS_EVERY: Millis = 10_000;

impl Supervisor {
    /// Starts the retention job when it is due and the last one has ended.
    pub(super) fn keep_logs(&mut self) {
        let now = self.now();
        if now < self.logs_kept_at + KEEP_LOGS_EVERY && self.logs_kept_at != 0 {
            return;
        }
        if self.logs_job.as_ref().is_some_and(|j| !j.is_finished()) {
            return;
        }
        self.logs_kept_at = now.max(1);
        let mut plan: Vec<(PathBuf, crate::logs::Retention, BTreeSet<String>)> = Vec::new();
        for (unit, dir) in crate::logs::groups(&self.paths.logs()) {
            let rt = self.units.get(&unit);
            let retention = rt
                .and_then(|rt| rt.revision(rt.current).or_else(|| rt.revisions.last()))
                .map(|r| r.unit.logs)
                .unwrap_or_default();
            let mut live: BTreeSet<String> = BTreeSet::new();
            if let Some(rt) = rt {
                live.extend(rt.tasks.iter().map(|t| t.task.id.to_string()));
                live.extend(rt.starting.iter().map(|s| s.id.to_string()));
            }
            live.extend(
                self.builds
                    .iter()
                    .filter(|b| b.log.parent() == Some(dir.as_path()))
                    .map(|b| format!("build-{}", b.id)),
            );
            plan.push((dir, retention, live));
        }
        self.logs_job = Some(tokio::task::spawn_blocking(move || {
            let now = SystemTime::now();
            for (dir, retention, live) in plan {
                crate::logs::enforce(&dir, retention, &live, now);
            }
        }));
    }
}
