//! The decisions of the local cloud, as pure state machines over a clock you pass
//! in (milliseconds): target health, target selection, rollouts with the circuit
//! breaker, restart backoff. Sockets, processes and containers are thin shells
//! around these.

pub mod backoff;
pub mod balance;
pub mod health;
pub mod rollout;

/// Milliseconds on the supervisor's monotonic clock.
pub type Millis = u64;
