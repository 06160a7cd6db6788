//! The custom metrics: each metric (namespace, name, dimensions) with its
//! datapoints, bounded, and the journal op that adds datapoints.
//!
//! Retention (the bound on memory): a datapoint older than [`RETENTION_MS`] (15
//! days, as long as AWS keeps 1-minute data) before the newest write is dropped;
//! a metric keeps at most [`MAX_WEIGHT`] values (a datum of `Values` weighs one
//! per value, any other datum one), its oldest datapoints dropped first; at most
//! [`MAX_METRICS`] metrics exist, and a put that would add more is refused. The
//! rules depend only on the ops and their clock values, so replaying the journal
//! rebuilds the same datapoints.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// How long datapoints are kept (15 days).
pub const RETENTION_MS: u64 = 15 * 86_400_000;
/// Values kept per metric.
pub const MAX_WEIGHT: usize = 20_000;
/// Metrics kept.
pub const MAX_METRICS: usize = 2_000;

/// A metric's identity: dimensions sorted by name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Key {
    #[serde(rename = "ns")]
    pub namespace: String,
    #[serde(rename = "n")]
    pub name: String,
    #[serde(rename = "d", default, skip_serializing_if = "Vec::is_empty")]
    pub dimensions: Vec<(String, String)>,
}

/// The namespace of ECS Container Insights, which the local cloud writes.
pub const CONTAINER_INSIGHTS: &str = "ECS/ContainerInsights";

/// Whether only the local cloud writes into namespace `ns`.
pub fn is_builtin_namespace(ns: &str) -> bool {
    ns.starts_with("AWS/") || ns == CONTAINER_INSIGHTS
}

impl Key {
    /// A metric of the local cloud's own (namespaces `AWS/...` and
    /// [`CONTAINER_INSIGHTS`], which a put may not use).
    pub fn is_builtin(&self) -> bool {
        is_builtin_namespace(&self.namespace)
    }
}

/// One datum as stored: its statistics, and its values (with counts) when it
/// gave them (percentiles need them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Epoch milliseconds.
    pub t: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub sum: f64,
    pub count: f64,
    pub min: f64,
    pub max: f64,
    /// (value, count) pairs; empty for a `StatisticValues` datum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<(f64, f64)>,
}

impl Point {
    fn weight(&self) -> usize {
        self.values.len().max(1)
    }
}

/// The journal op: datapoints added at `now` (the clock that retention uses).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Op {
    pub now: u64,
    pub data: Vec<(Key, Point)>,
}

/// What a datapoint counts against [`MAX_WEIGHT`]: its values, except for a
/// built-in metric's datapoint, which counts one (a response-time histogram has
/// at most 64 buckets; built-in metrics are bounded by datapoints).
fn weight(builtin: bool, p: &Point) -> usize {
    if builtin { 1 } else { p.weight() }
}

#[derive(Debug, Default)]
struct Series {
    points: VecDeque<Point>,
    weight: usize,
}

/// Every metric and its datapoints.
#[derive(Debug, Default)]
pub struct Metrics {
    series: BTreeMap<Key, Series>,
}

impl Metrics {
    /// Whether adding `data` would exceed [`MAX_METRICS`] metrics outside the
    /// built-in namespaces (those are the local cloud's own, bounded by what it
    /// runs, and never refused).
    pub fn would_exceed(&self, data: &[(Key, Point)]) -> bool {
        let mut new: Vec<&Key> = data
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !k.is_builtin() && !self.series.contains_key(*k))
            .collect();
        new.sort();
        new.dedup();
        let custom = self.series.keys().filter(|k| !k.is_builtin()).count();
        custom + new.len() > MAX_METRICS
    }

    /// Drops the datapoints of metric `k` older than `oldest` (epoch ms), and the
    /// metric when none is left: the local cloud's own retention of its built-in
    /// metrics (`local.metrics.retention`). Not journaled: a replay may bring
    /// such datapoints back until the next trim, never ones that were not put.
    pub fn trim(&mut self, k: &Key, oldest: u64) {
        let Some(s) = self.series.get_mut(k) else {
            return;
        };
        let builtin = k.is_builtin();
        while s.points.front().is_some_and(|p| p.t < oldest) {
            if let Some(old) = s.points.pop_front() {
                s.weight -= weight(builtin, &old);
            }
        }
        if s.points.is_empty() {
            self.series.remove(k);
        }
    }

    /// Drops the datapoints (and metrics left without any) older than retention
    /// keeps at `now`: what the next [`Metrics::apply`] at `now` drops anyway, so
    /// that metrics long gone do not count against [`MAX_METRICS`].
    pub fn expire(&mut self, now: u64) {
        let oldest = now.saturating_sub(RETENTION_MS);
        self.series.retain(|k, s| {
            let builtin = k.is_builtin();
            while s.points.front().is_some_and(|p| p.t < oldest) {
                if let Some(old) = s.points.pop_front() {
                    s.weight -= weight(builtin, &old);
                }
            }
            !s.points.is_empty()
        });
    }

    /// Adds the op's datapoints, then drops what retention no longer keeps.
    pub fn apply(&mut self, op: &Op) {
        for (k, p) in &op.data {
            let builtin = k.is_builtin();
            let s = self.series.entry(k.clone()).or_default();
            // Kept in time order: puts usually come in order, so insert from the back.
            let at = s
                .points
                .iter()
                .rposition(|q| q.t <= p.t)
                .map_or(0, |i| i + 1);
            s.weight += weight(builtin, p);
            s.points.insert(at, p.clone());
            while s.weight > MAX_WEIGHT {
                match s.points.pop_front() {
                    Some(old) => s.weight -= weight(builtin, &old),
                    None => break,
                }
            }
        }
        self.expire(op.now);
    }

    /// The metrics, in key order.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.series.keys()
    }

    /// A metric's datapoints, in time order.
    pub fn points(&self, k: &Key) -> impl Iterator<Item = &Point> {
        self.series.get(k).into_iter().flat_map(|s| s.points.iter())
    }

    /// The ops that rebuild this state, for the journal's image: each metric's
    /// datapoints in ops of at most about `IMAGE_OP_BYTES` (a record holds the
    /// metric's key once per datapoint, and a journal record is bounded).
    pub fn image(&self) -> Vec<Op> {
        let mut out = Vec::new();
        for (k, s) in &self.series {
            let key_bytes = key_bytes(k);
            let mut data = Vec::new();
            let mut bytes = 0;
            for p in &s.points {
                let b = key_bytes + point_bytes(p);
                if !data.is_empty() && bytes + b > IMAGE_OP_BYTES {
                    // What is here is already within retention: no clock drops any of it.
                    out.push(Op {
                        now: 0,
                        data: std::mem::take(&mut data),
                    });
                    bytes = 0;
                }
                bytes += b;
                data.push((k.clone(), p.clone()));
            }
            if !data.is_empty() {
                out.push(Op { now: 0, data });
            }
        }
        out
    }

    /// An upper bound guess of the image's size in bytes.
    pub fn image_estimate(&self) -> u64 {
        self.series
            .iter()
            .map(|(k, s)| {
                let key = key_bytes(k) as u64;
                s.points
                    .iter()
                    .map(|p| key + point_bytes(p) as u64)
                    .sum::<u64>()
            })
            .sum()
    }
}

/// About the most bytes of one op of the image (journal records are bounded
/// at 16 MiB).
pub const IMAGE_OP_BYTES: usize = 1024 * 1024;

/// An upper bound of a key's size in an op's JSON (names are free of control
/// characters, so none escapes to more than two bytes).
fn key_bytes(k: &Key) -> usize {
    2 * (k.namespace.len()
        + k.name.len()
        + k.dimensions
            .iter()
            .map(|(n, v)| n.len() + v.len() + 8)
            .sum::<usize>())
        + 32
}

/// An upper bound of a datapoint's size in an op's JSON, without its key.
fn point_bytes(p: &Point) -> usize {
    160 + p.unit.as_ref().map_or(0, |u| 2 * u.len()) + 56 * p.values.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(t: u64, v: f64, n: usize) -> Point {
        Point {
            t,
            unit: None,
            sum: v * n as f64,
            count: n as f64,
            min: v,
            max: v,
            values: vec![(v, 1.0); n],
        }
    }

    fn key(n: &str) -> Key {
        Key {
            namespace: "p/s".into(),
            name: n.into(),
            dimensions: vec![],
        }
    }

    #[test]
    fn retention_bounds_values_and_age_and_image_rebuilds() {
        let mut m = Metrics::default();
        let day = 86_400_000;
        m.apply(&Op {
            now: day,
            data: vec![(key("old"), point(day, 1.0, 1))],
        });
        // Out of order: kept sorted.
        for i in (0..30u64).rev() {
            m.apply(&Op {
                now: 20 * day,
                data: vec![(key("a"), point(20 * day + i, i as f64, 1000))],
            });
        }
        // `old` is past 15 days and gone with its metric.
        assert_eq!(m.keys().count(), 1);
        let ts: Vec<u64> = m.points(&key("a")).map(|p| p.t).collect();
        // 20 of the 30 datums (1000 values each) fit; the oldest were dropped.
        assert_eq!(ts.len(), 20);
        assert!(ts.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ts[0], 20 * day + 10);
        let mut again = Metrics::default();
        for op in m.image() {
            again.apply(&op);
        }
        assert_eq!(again.image(), m.image());
    }

    /// A metric whose key is long (30 dimensions of 1,024-character values) and
    /// holds every value it may: the image splits it into ops whose records stay
    /// far below the journal's bound, and rebuilds the same datapoints.
    #[test]
    fn the_image_of_a_metric_with_a_long_key_stays_within_a_record() {
        let long = Key {
            namespace: "p/s".into(),
            name: "n".repeat(255),
            dimensions: (0..30)
                .map(|i| (format!("d{i:02}"), "v".repeat(1024)))
                .collect(),
        };
        let mut m = Metrics::default();
        let now = 30 * 86_400_000;
        for i in 0..MAX_WEIGHT as u64 {
            m.apply(&Op {
                now,
                data: vec![(long.clone(), point(now - i, 1.0, 1))],
            });
        }
        let image = m.image();
        assert!(image.len() > 1, "split into several ops");
        for op in &image {
            let bytes = serde_json::to_vec(op).expect("json").len();
            assert!(bytes <= 2 * IMAGE_OP_BYTES, "{bytes} bytes in one op");
        }
        let mut again = Metrics::default();
        for op in &image {
            again.apply(op);
        }
        assert_eq!(
            again.points(&long).count(),
            m.points(&long).count(),
            "the same datapoints"
        );
        assert_eq!(again.image(), image);
        assert!(
            m.image_estimate()
                >= image
                    .iter()
                    .map(|o| serde_json::to_vec(o).map_or(0, |v| v.len()) as u64)
                    .sum::<u64>()
                    / 2
        );
    }

    /// Metrics whose datapoints are all past retention do not count against
    /// the limit once `expire` ran at the put's clock.
    #[test]
    fn expired_metrics_do_not_hold_the_limit() {
        let mut m = Metrics::default();
        let day = 86_400_000;
        for i in 0..MAX_METRICS {
            m.apply(&Op {
                now: day,
                data: vec![(key(&format!("m{i}")), point(day, 1.0, 1))],
            });
        }
        let fresh = vec![(key("new"), point(20 * day, 1.0, 1))];
        assert!(m.would_exceed(&fresh));
        m.expire(20 * day);
        assert!(!m.would_exceed(&fresh));
        assert_eq!(m.keys().count(), 0);
    }
}
