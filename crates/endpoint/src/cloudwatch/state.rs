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
    /// Whether adding `data` would exceed [`MAX_METRICS`].
    pub fn would_exceed(&self, data: &[(Key, Point)]) -> bool {
        let mut new: Vec<&Key> = data
            .iter()
            .map(|(k, _)| k)
            .filter(|k| !self.series.contains_key(*k))
            .collect();
        new.sort();
        new.dedup();
        self.series.len() + new.len() > MAX_METRICS
    }

    /// Adds the op's datapoints, then drops what retention no longer keeps.
    pub fn apply(&mut self, op: &Op) {
        for (k, p) in &op.data {
            let s = self.series.entry(k.clone()).or_default();
            // Kept in time order: puts usually come in order, so insert from the back.
            let at = s
                .points
                .iter()
                .rposition(|q| q.t <= p.t)
                .map_or(0, |i| i + 1);
            s.weight += p.weight();
            s.points.insert(at, p.clone());
            while s.weight > MAX_WEIGHT {
                match s.points.pop_front() {
                    Some(old) => s.weight -= old.weight(),
                    None => break,
                }
            }
        }
        let oldest = op.now.saturating_sub(RETENTION_MS);
        self.series.retain(|_, s| {
            while s.points.front().is_some_and(|p| p.t < oldest) {
                if let Some(old) = s.points.pop_front() {
                    s.weight -= old.weight();
                }
            }
            !s.points.is_empty()
        });
    }

    /// The metrics, in key order.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.series.keys()
    }

    /// A metric's datapoints, in time order.
    pub fn points(&self, k: &Key) -> impl Iterator<Item = &Point> {
        self.series.get(k).into_iter().flat_map(|s| s.points.iter())
    }

    /// The ops that rebuild this state (one per metric), for the journal's image.
    pub fn image(&self) -> Vec<Op> {
        self.series
            .iter()
            .map(|(k, s)| Op {
                // What is here is already within retention: no clock drops any of it.
                now: 0,
                data: s.points.iter().map(|p| (k.clone(), p.clone())).collect(),
            })
            .collect()
    }

    /// An upper bound guess of the image's size in bytes.
    pub fn image_estimate(&self) -> u64 {
        self.series
            .iter()
            .map(|(k, s)| {
                (k.namespace.len() + k.name.len() + 100) as u64 * s.points.len() as u64
                    + 24 * s.weight as u64
            })
            .sum()
    }
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
}
