//! The decisions of the local cloud, as pure state machines over a clock you pass
//! in (milliseconds): the task lifecycle and each tick's plan, rollouts with the
//! circuit breaker, restart backoff, target-tracking autoscaling and CloudWatch
//! metric alarms, each fed one metrics period at a time (target
//! health and selection are the load balancer's, `pantstack_lb`). Processes and
//! containers are thin shells around these.

pub mod alarms;
pub mod backoff;
pub mod rollout;
pub mod scaling;
pub mod spot;
pub mod tasks;

/// Milliseconds on the supervisor's monotonic clock.
pub type Millis = u64;
