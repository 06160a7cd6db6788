//! Choosing a target for a request, as an ALB does: among healthy targets, round
//! robin or least outstanding requests; when no target is healthy, fail open (all
//! registered, non-draining targets); when none is registered, no target (503).

use super::health::State;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    LeastOutstanding,
}

impl Algorithm {
    pub fn parse(s: &str) -> Self {
        if s == "least_outstanding_requests" {
            Algorithm::LeastOutstanding
        } else {
            Algorithm::RoundRobin
        }
    }
}

/// What the balancer knows of one target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub state: State,
    pub outstanding: u32,
}

/// Index of the chosen target. `turn` advances on every call (round robin and
/// tie-breaking). Allocation-free: it runs on every request.
pub fn pick(targets: &[Candidate], algo: Algorithm, turn: &mut usize) -> Option<usize> {
    let healthy = targets.iter().filter(|t| t.state == State::Healthy).count();
    // No healthy target: fail open to every registered, non-draining one.
    let in_pool = |t: &Candidate| {
        if healthy > 0 {
            t.state == State::Healthy
        } else {
            t.state != State::Draining
        }
    };
    let size = if healthy > 0 {
        healthy
    } else {
        targets.iter().filter(|t| in_pool(t)).count()
    };
    if size == 0 {
        return None;
    }
    let start = *turn % size;
    *turn = turn.wrapping_add(1);
    // The k-th member of the pool, in target order.
    let nth = |k: usize| {
        targets
            .iter()
            .enumerate()
            .filter(|(_, t)| in_pool(t))
            .nth(k)
            .map(|(i, _)| i)
    };
    match algo {
        Algorithm::RoundRobin => nth(start),
        Algorithm::LeastOutstanding => {
            let mut best: Option<usize> = None;
            for k in 0..size {
                let Some(i) = nth((start + k) % size) else {
                    continue;
                };
                if best.is_none_or(|b| targets[i].outstanding < targets[b].outstanding) {
                    best = Some(i);
                }
            }
            best
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(state: State, outstanding: u32) -> Candidate {
        Candidate { state, outstanding }
    }

    #[test]
    fn round_robin_over_healthy_targets_only() {
        let t = [
            c(State::Healthy, 0),
            c(State::Unhealthy, 0),
            c(State::Healthy, 0),
        ];
        let mut turn = 0;
        let picks: Vec<_> = (0..4)
            .map(|_| pick(&t, Algorithm::RoundRobin, &mut turn))
            .collect();
        assert_eq!(picks, [Some(0), Some(2), Some(0), Some(2)]);
    }

    #[test]
    fn fails_open_when_every_target_is_unhealthy_but_never_to_draining() {
        let t = [
            c(State::Unhealthy, 0),
            c(State::Draining, 0),
            c(State::Initial, 0),
        ];
        let mut turn = 0;
        let picks: Vec<_> = (0..4)
            .map(|_| pick(&t, Algorithm::RoundRobin, &mut turn))
            .collect();
        assert_eq!(picks, [Some(0), Some(2), Some(0), Some(2)]);
        assert_eq!(
            pick(&[c(State::Draining, 0)], Algorithm::RoundRobin, &mut turn),
            None
        );
        assert_eq!(pick(&[], Algorithm::RoundRobin, &mut turn), None);
    }

    #[test]
    fn least_outstanding_prefers_the_idle_target() {
        let t = [
            c(State::Healthy, 3),
            c(State::Healthy, 0),
            c(State::Healthy, 5),
        ];
        let mut turn = 0;
        for _ in 0..5 {
            assert_eq!(pick(&t, Algorithm::LeastOutstanding, &mut turn), Some(1));
        }
        // Ties rotate.
        let t = [c(State::Healthy, 1), c(State::Healthy, 1)];
        let a = pick(&t, Algorithm::LeastOutstanding, &mut turn);
        let b = pick(&t, Algorithm::LeastOutstanding, &mut turn);
        assert_ne!(a, b);
    }
}
