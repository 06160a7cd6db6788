//! Fargate Spot drills (`pantstack spot-interrupt`): a task the capacity provider
//! strategy puts on FARGATE_SPOT (`core::spot::placement`) gets Fargate's
//! two-minute warning through the lifecycle's own machinery
//! (`core::spot::interrupt`: event, deregistration and SIGTERM now, SIGKILL after
//! the unit's stop timeout); the next tick's plan starts its replacement.

use super::*;
use crate::core::spot;

impl Supervisor {
    /// The FARGATE_SPOT tasks of a unit's running tasks.
    pub(super) fn spot_tasks_of(&self, name: &str) -> Vec<u64> {
        let Some(rt) = self.units.get(name) else {
            return Vec::new();
        };
        let strategy = rt
            .revision(rt.current)
            .or_else(|| rt.revisions.last())
            .map(|r| r.unit.capacity)
            .unwrap_or_default();
        let running: Vec<(u64, Millis)> = rt
            .tasks
            .iter()
            .filter(|t| t.phase == Phase::Running)
            .map(|t| (t.task.id, t.started_at))
            .collect();
        spot::spot_tasks(&running, strategy)
    }

    /// Interrupts the newest FARGATE_SPOT task of `target` (a service or unit), or
    /// task `wanted`, or with `all` every one; the answer line.
    pub(super) fn spot_interrupt(&mut self, target: &str, wanted: Option<u64>, all: bool) -> Value {
        let mut units = self.units_of_service(target);
        if units.is_empty() {
            return json!({ "done": true, "error": format!("no service or unit `{target}`") });
        }
        // The unit named exactly first (`api` before `api-worker`).
        units.sort_by_key(|u| u != target);
        let mut chosen: Vec<(String, u64)> = Vec::new();
        for u in &units {
            let spot = self.spot_tasks_of(u);
            match wanted {
                Some(id) => {
                    let runs = self.units.get(u).is_some_and(|rt| {
                        rt.tasks
                            .iter()
                            .any(|t| t.task.id == id && t.phase == Phase::Running)
                    });
                    if runs && !spot.contains(&id) {
                        return json!({ "done": true, "error": format!(
                            "task {id} of {u} runs on FARGATE (the strategy's on-demand share): Fargate interrupts only FARGATE_SPOT tasks ({})",
                            if spot.is_empty() { "this unit has none".to_string() } else { format!("{u}'s: {}", join(&spot)) }
                        )});
                    }
                    if runs {
                        chosen.push((u.clone(), id));
                    }
                }
                None if all => chosen.extend(spot.iter().map(|id| (u.clone(), *id))),
                None => {
                    if chosen.is_empty()
                        && let Some(id) = spot.iter().max()
                    {
                        chosen.push((u.clone(), *id));
                    }
                }
            }
        }
        if chosen.is_empty() {
            let why = match wanted {
                Some(id) => format!("{target} has no running task {id}"),
                None => {
                    let detail: Vec<String> = units
                        .iter()
                        .filter_map(|u| self.units.get(u))
                        .map(|rt| {
                            let s = rt
                                .revisions
                                .last()
                                .map(|r| r.unit.capacity)
                                .unwrap_or_default();
                            let n = rt.tasks.iter().filter(|t| t.phase == Phase::Running).count();
                            format!(
                                "{}: {n} running task(s), capacity on_demand_base {} and weights FARGATE {} : FARGATE_SPOT {}",
                                rt.name, s.on_demand_base, s.on_demand_weight, s.spot_weight
                            )
                        })
                        .collect();
                    format!(
                        "{target} has no task on FARGATE_SPOT, so a Spot interruption cannot reach it ({}); scale it up (`pantstack scale {target} N`) or raise `capacity.spot_weight` to drill one",
                        detail.join("; ")
                    )
                }
            };
            return json!({ "done": true, "error": why });
        }
        let now = self.now();
        let mut answered = Vec::new();
        for (name, id) in chosen {
            let actions = {
                let Some(rt) = self.units.get_mut(&name) else {
                    continue;
                };
                let stop_timeout = rt
                    .tasks
                    .iter()
                    .find(|t| t.task.id == id)
                    .map(|t| rt.observe(t).timings.stop_timeout)
                    .unwrap_or_default();
                let Some(t) = rt.tasks.iter_mut().find(|t| t.task.id == id) else {
                    continue;
                };
                let mut s = t.state();
                let Some(actions) = spot::interrupt(&mut s, stop_timeout, now) else {
                    continue;
                };
                t.set_state(s);
                answered.push(json!({
                    "unit": name, "task": id, "capacity": spot::Provider::FargateSpot.as_str(),
                    "stop_timeout_secs": stop_timeout / 1000,
                }));
                actions
            };
            // The notice goes out before the signal, as Fargate's task state
            // change precedes its SIGTERM.
            let (notices, effects): (Vec<Action>, Vec<Action>) = actions
                .into_iter()
                .partition(|a| matches!(a, Action::Event { .. }));
            for n in notices {
                if let Action::Event { kind, message } = n {
                    self.emit(&name, kind, message);
                }
            }
            self.apply(&name, effects, now);
        }
        if answered.is_empty() {
            return json!({ "done": true, "error": format!("no task of {target} was interrupted: the ones chosen are stopping already") });
        }
        self.save();
        json!({ "done": true, "interrupted": answered })
    }
}

fn join(ids: &[u64]) -> String {
    ids.iter()
        .map(|i| format!("task {i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
