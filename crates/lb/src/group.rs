//! A target group: its targets, their health, and each worker's private view of them
//! for selection ([`crate::balance`] decides, [`crate::health`] tracks state).

use crate::balance::{self, Algorithm, Candidate};
use crate::health::{State, TargetHealth, Thresholds};
use crate::spec::HttpSpec;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

pub struct Target {
    pub task: u64,
    pub addr: SocketAddr,
    pub health: TargetHealth,
    pub outstanding: Arc<AtomicU32>,
    pub registered: Instant,
}

/// A target group: its targets and their health.
pub struct Group {
    targets: Mutex<Vec<Target>>,
    /// Bumped on every change that matters to selection (registration, health
    /// state, draining): workers refresh their private copy when it moves.
    generation: AtomicU64,
    pub algorithm: Algorithm,
}

/// A worker's private copy of the selection state (no shared cache line is written
/// per request but the target's in-flight counter).
pub(crate) struct View {
    pub(crate) generation: u64,
    pub(crate) targets: Vec<(SocketAddr, State, Arc<AtomicU32>)>,
    pub(crate) turn: usize,
    pub(crate) spec_generation: u64,
    pub(crate) spec: Arc<HttpSpec>,
}

/// A target's view for `status`.
#[derive(Clone, Debug)]
pub struct TargetView {
    pub task: u64,
    pub addr: SocketAddr,
    pub state: State,
    pub outstanding: u32,
    pub last_failure: Option<String>,
    pub ever_healthy: bool,
}

impl Group {
    pub fn new(algorithm: Algorithm) -> Self {
        Group {
            targets: Mutex::new(Vec::new()),
            generation: AtomicU64::new(1),
            algorithm,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Target>> {
        // A panic while holding this lock is a bug elsewhere; the data stays usable.
        self.targets.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn register(&self, task: u64, addr: SocketAddr) {
        let mut t = self.lock();
        t.retain(|x| x.task != task);
        t.push(Target {
            task,
            addr,
            health: TargetHealth::new(),
            outstanding: Arc::new(AtomicU32::new(0)),
            registered: Instant::now(),
        });
        self.bump();
    }

    /// Starts draining: no new requests go to the target.
    pub fn deregister(&self, task: u64) {
        for t in self.lock().iter_mut().filter(|t| t.task == task) {
            t.health.drain();
        }
        self.bump();
    }

    pub fn remove(&self, task: u64) {
        self.lock().retain(|t| t.task != task);
        self.bump();
    }

    fn refresh(&self, v: &mut View) {
        let g = self.lock();
        v.generation = self.generation.load(Ordering::Acquire);
        v.targets = g
            .iter()
            .map(|t| (t.addr, t.health.state, t.outstanding.clone()))
            .collect();
    }

    pub fn view(&self, task: u64) -> Option<TargetView> {
        self.lock().iter().find(|t| t.task == task).map(view_of)
    }

    pub fn views(&self) -> Vec<TargetView> {
        self.lock().iter().map(view_of).collect()
    }

    pub(crate) fn record(&self, task: u64, result: Result<(), String>, th: Thresholds) -> bool {
        let mut g = self.lock();
        match g.iter_mut().find(|t| t.task == task) {
            Some(t) if t.health.state != State::Draining => {
                if t.health.record(result, th).is_some() {
                    self.bump();
                }
                true
            }
            _ => false,
        }
    }

    /// Picks a target from a worker's view; the guard counts the request as
    /// outstanding until dropped.
    pub(crate) fn pick(&self, v: &mut View) -> Option<(SocketAddr, Outstanding)> {
        if self.generation.load(Ordering::Acquire) != v.generation {
            self.refresh(v);
        }
        let mut buf = [Candidate {
            state: State::Draining,
            outstanding: 0,
        }; 64];
        let n = v.targets.len().min(buf.len());
        for (slot, (_, state, out)) in buf.iter_mut().zip(v.targets.iter()) {
            *slot = Candidate {
                state: *state,
                outstanding: if self.algorithm == Algorithm::LeastOutstanding {
                    out.load(Ordering::Relaxed)
                } else {
                    0
                },
            };
        }
        let i = balance::pick(&buf[..n], self.algorithm, &mut v.turn)?;
        let (addr, _, out) = &v.targets[i];
        out.fetch_add(1, Ordering::Relaxed);
        Some((*addr, Outstanding(out.clone())))
    }
}

fn view_of(t: &Target) -> TargetView {
    TargetView {
        task: t.task,
        addr: t.addr,
        state: t.health.state,
        outstanding: t.outstanding.load(Ordering::Relaxed),
        last_failure: t.health.last_failure.clone(),
        ever_healthy: t.health.ever_healthy,
    }
}

/// Decrements a target's outstanding count when the response body ends.
pub struct Outstanding(Arc<AtomicU32>);

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
