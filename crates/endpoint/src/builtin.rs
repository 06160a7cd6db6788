//! What the local cloud itself reads and writes of the endpoint's state for its
//! built-in metrics (`pantstack_local::metrics`): queue depths, datapoints in the
//! `AWS/...` and `ECS/ContainerInsights` namespaces (no policy, no metric limit),
//! their trimming to the local retention, and GetMetricData without a policy.

use crate::error::ApiError;
use crate::{Core, Record, cloudwatch, lock, now_ms};
use serde_json::Value;

/// One queue's depth at a moment (the `AWS/SQS` metrics).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueMetrics {
    pub name: String,
    /// ApproximateNumberOfMessagesVisible.
    pub visible: usize,
    /// ApproximateNumberOfMessagesNotVisible.
    pub in_flight: usize,
    /// ApproximateNumberOfMessagesDelayed.
    pub delayed: usize,
    /// ApproximateAgeOfOldestMessage, seconds.
    pub oldest_age_s: u64,
}

impl Core {
    /// Each queue's depth now, for the `AWS/SQS` metrics.
    pub fn queue_metrics(&self) -> Vec<QueueMetrics> {
        let now = now_ms();
        let q = lock(&self.sqs);
        q.queues
            .values()
            .map(|r| {
                let (visible, in_flight, delayed) = r.q.counts(now);
                QueueMetrics {
                    name: r.name.clone(),
                    visible,
                    in_flight,
                    delayed,
                    oldest_age_s: r
                        .q
                        .oldest_sent(now)
                        .map_or(0, |t| now.saturating_sub(t) / 1000),
                }
            })
            .collect()
    }

    /// Adds the local cloud's own datapoints (namespaces `AWS/...`): no policy,
    /// no metric limit; answered once journaled.
    pub async fn put_builtin_metrics(
        &self,
        data: Vec<(cloudwatch::Key, cloudwatch::Point)>,
    ) -> Result<(), ApiError> {
        self.stopped()?;
        if data.is_empty() {
            return Ok(());
        }
        let op = cloudwatch::Op {
            now: now_ms(),
            data,
        };
        let rx = {
            let mut m = lock(&self.metrics);
            m.expire(op.now);
            m.apply(&op);
            self.journal.submit(self.records(vec![op], Record::Metrics))
        };
        Self::durable(rx).await
    }

    /// Drops the datapoints of each metric that `oldest` gives a time for (epoch
    /// ms) older than it (`cloudwatch::Metrics::trim`).
    pub fn trim_metrics(&self, oldest: impl Fn(&cloudwatch::Key) -> Option<u64>) {
        let mut m = lock(&self.metrics);
        let keys: Vec<(cloudwatch::Key, u64)> = m
            .keys()
            .filter_map(|k| oldest(k).map(|t| (k.clone(), t)))
            .collect();
        for (k, t) in keys {
            m.trim(&k, t);
        }
    }

    /// The metrics kept (built-in and custom) that `keep` selects.
    pub fn metric_keys(&self, keep: impl Fn(&cloudwatch::Key) -> bool) -> Vec<cloudwatch::Key> {
        lock(&self.metrics)
            .keys()
            .filter(|k| keep(k))
            .cloned()
            .collect()
    }

    /// A GetMetricData over the metrics kept, without a policy (the local
    /// cloud's own reads: `pantstack metrics`, the dashboard, alarms).
    pub fn get_metric_data(&self, input: &Value) -> Result<Value, ApiError> {
        cloudwatch::get(&lock(&self.metrics), input)
    }
}
