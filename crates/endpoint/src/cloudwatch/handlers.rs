//! PutMetricData, GetMetricData and ListMetrics: input checked as CloudWatch
//! checks it (its error codes and messages), datapoints built into an [`Op`],
//! statistics computed per period, output shaped as the JSON and CBOR protocols
//! carry it (timestamps as epoch seconds).

use super::state::{Key, Metrics, Op, Point};
use crate::error::ApiError;
use serde_json::{Map, Value, json};

/// Datums of one PutMetricData.
pub const MAX_DATUMS: usize = 1000;
/// Values of one datum's `Values`.
pub const MAX_VALUES: usize = 150;
/// Dimensions of one metric.
pub const MAX_DIMENSIONS: usize = 30;
/// Queries of one GetMetricData.
pub const MAX_QUERIES: usize = 500;
/// Metrics of one ListMetrics page.
pub const PAGE: usize = 500;
/// Datapoints of one GetMetricData answer (AWS's limit).
pub const MAX_DATAPOINTS: usize = 100_800;
/// How far back and ahead of now a datum's timestamp may be: two weeks and two
/// hours, as CloudWatch accepts.
const PAST_MS: u64 = 14 * 86_400_000;
const FUTURE_MS: u64 = 2 * 3_600_000;
/// CloudWatch's value range: values beyond 2^360 in magnitude are refused.
const LIMIT: f64 = 2.348_542_582_773_833_3e108;

const UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

pub(crate) fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::bad("InvalidParameterValueException", msg).with_query_code("InvalidParameterValue")
}

fn missing(member: &str) -> ApiError {
    ApiError::bad(
        "MissingRequiredParameterException",
        format!("The parameter {member} is required."),
    )
    .with_query_code("MissingParameter")
}

fn combination(msg: impl Into<String>) -> ApiError {
    ApiError::bad("InvalidParameterCombinationException", msg)
        .with_query_code("InvalidParameterCombination")
}

/// Refuses members the action does not have (so a misspelt one is not ignored).
fn only(v: &Map<String, Value>, members: &[&str], at: &str) -> Result<(), ApiError> {
    match v.keys().find(|k| !members.contains(&k.as_str())) {
        Some(k) => Err(invalid(format!(
            "{at}{k} is not a member CloudWatch knows here (expected one of {})",
            members.join(", ")
        ))),
        None => Ok(()),
    }
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, ApiError> {
    v.as_object()
        .ok_or_else(|| invalid(format!("{at} must be a structure")))
}

fn text<'a>(
    v: &'a Map<String, Value>,
    key: &str,
    at: &str,
    max: usize,
) -> Result<Option<&'a str>, ApiError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().any(char::is_control) => Err(invalid(format!(
            "The value {s:?} for parameter {at}{key} is invalid: it holds a control character."
        ))),
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= max => Ok(Some(s)),
        Some(Value::String(s)) => Err(invalid(format!(
            "The value {s:?} for parameter {at}{key} is invalid: it must be 1 to {max} characters."
        ))),
        Some(_) => Err(invalid(format!("{at}{key} must be a string"))),
    }
}

fn required<'a>(
    v: &'a Map<String, Value>,
    key: &str,
    at: &str,
    max: usize,
) -> Result<&'a str, ApiError> {
    text(v, key, at, max)?.ok_or_else(|| missing(&format!("{at}{key}")))
}

fn array<'a>(v: &'a Map<String, Value>, key: &str, at: &str) -> Result<&'a [Value], ApiError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(invalid(format!("{at}{key} must be a list"))),
    }
}

fn number(v: &Value, at: &str) -> Result<f64, ApiError> {
    let f = v
        .as_f64()
        .ok_or_else(|| invalid(format!("{at} must be a number")))?;
    if !f.is_finite() || f.abs() > LIMIT || (f != 0.0 && f.abs() < 1.0 / LIMIT) {
        return Err(invalid(format!(
            "The value {f} for parameter {at} is invalid: CloudWatch accepts 0 and magnitudes from 2^-360 to 2^360."
        )));
    }
    Ok(f)
}

/// A timestamp member (epoch seconds, as the JSON and CBOR protocols send it) in
/// epoch milliseconds.
fn timestamp(v: &Value, at: &str) -> Result<u64, ApiError> {
    let secs = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    }
    .filter(|s| s.is_finite() && *s >= 0.0)
    .ok_or_else(|| invalid(format!("{at} must be a timestamp (epoch seconds)")))?;
    Ok((secs * 1000.0) as u64)
}

/// A metric's dimensions, checked and sorted by name.
fn dimensions(v: &Map<String, Value>, at: &str) -> Result<Vec<(String, String)>, ApiError> {
    let list = array(v, "Dimensions", at)?;
    if list.len() > MAX_DIMENSIONS {
        return Err(invalid(format!(
            "The collection {at}Dimensions must not have a size greater than {MAX_DIMENSIONS}."
        )));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, d) in list.iter().enumerate() {
        let at = format!("{at}Dimensions.member.{}.", i + 1);
        let d = object(d, &at)?;
        only(d, &["Name", "Value"], &at)?;
        let name = required(d, "Name", &at, 255)?;
        let value = required(d, "Value", &at, 1024)?;
        out.push((name.to_string(), value.to_string()));
    }
    out.sort();
    if let Some(w) = out.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(invalid(format!(
            "The dimension {} is given twice in {at}Dimensions.",
            w[0].0
        )));
    }
    Ok(out)
}

fn namespace(ns: &str, at: &str) -> Result<(), ApiError> {
    if ns.starts_with(':') || ns.chars().any(char::is_control) {
        return Err(invalid(format!(
            "The value {ns} for parameter {at}Namespace is invalid."
        )));
    }
    Ok(())
}

/// The put's namespace (what IAM's `cloudwatch:namespace` is), checked.
pub fn put_namespace(input: &Value) -> Result<String, ApiError> {
    let v = object(input, "The request")?;
    let ns = required(v, "Namespace", "", 255)?;
    namespace(ns, "")?;
    if ns.starts_with("AWS/") {
        return Err(invalid(
            "The value AWS/ for parameter Namespace is invalid: namespaces starting with AWS/ are reserved for AWS services.",
        ));
    }
    if ns == super::state::CONTAINER_INSIGHTS {
        return Err(invalid(format!(
            "The value {ns} for parameter Namespace is invalid: the local cloud writes its Container Insights metrics there (AWS accepts puts into it; use a namespace of your own)."
        )));
    }
    Ok(ns.to_string())
}

/// PutMetricData's datapoints, as the op that adds them.
pub fn put(input: &Value, now: u64) -> Result<Op, ApiError> {
    let ns = put_namespace(input)?;
    let v = object(input, "The request")?;
    only(
        v,
        &[
            "Namespace",
            "MetricData",
            "EntityMetricData",
            "StrictEntityValidation",
        ],
        "",
    )?;
    if v.get("EntityMetricData").is_some_and(|e| !e.is_null()) {
        return Err(invalid(
            "EntityMetricData is not supported by the local cloud; send MetricData",
        ));
    }
    let data = array(v, "MetricData", "")?;
    if data.is_empty() {
        return Err(missing("MetricData"));
    }
    if data.len() > MAX_DATUMS {
        return Err(invalid(format!(
            "The collection MetricData must not have a size greater than {MAX_DATUMS}."
        )));
    }
    let mut out = Vec::with_capacity(data.len());
    for (i, d) in data.iter().enumerate() {
        let at = format!("MetricData.member.{}.", i + 1);
        let d = object(d, &at)?;
        only(
            d,
            &[
                "MetricName",
                "Dimensions",
                "Timestamp",
                "Value",
                "StatisticValues",
                "Values",
                "Counts",
                "Unit",
                "StorageResolution",
            ],
            &at,
        )?;
        let name = required(d, "MetricName", &at, 255)?;
        let dims = dimensions(d, &at)?;
        let t = match d.get("Timestamp") {
            None | Some(Value::Null) => now,
            Some(ts) => timestamp(ts, &format!("{at}Timestamp"))?,
        };
        if t.saturating_add(PAST_MS) < now || t > now.saturating_add(FUTURE_MS) {
            return Err(invalid(format!(
                "The parameter {at}Timestamp must specify a time no more than two weeks in the past and no more than two hours in the future."
            )));
        }
        let unit = text(d, "Unit", &at, 32)?;
        if let Some(u) = unit
            && !UNITS.contains(&u)
        {
            return Err(invalid(format!(
                "The value {u} for parameter {at}Unit is invalid: expected one of {}",
                UNITS.join(", ")
            )));
        }
        match d.get("StorageResolution") {
            None | Some(Value::Null) => {}
            Some(r) if r.as_u64() == Some(1) || r.as_u64() == Some(60) => {}
            Some(r) => {
                return Err(invalid(format!(
                    "The value {r} for parameter {at}StorageResolution is invalid: it must be 1 or 60."
                )));
            }
        }
        let value = d.get("Value").filter(|x| !x.is_null());
        let stats = d.get("StatisticValues").filter(|x| !x.is_null());
        let values = array(d, "Values", &at)?;
        let counts = array(d, "Counts", &at)?;
        let given = [value.is_some(), stats.is_some(), !values.is_empty()];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(combination(format!(
                "The parameters {at}Value, {at}Values and {at}StatisticValues are mutually exclusive and you have specified more than one."
            )));
        }
        if !counts.is_empty() && values.is_empty() {
            return Err(combination(format!(
                "The parameter {at}Counts is given without {at}Values."
            )));
        }
        let point = if let Some(x) = value {
            let x = number(x, &format!("{at}Value"))?;
            Point {
                t,
                unit: unit.map(str::to_string),
                sum: x,
                count: 1.0,
                min: x,
                max: x,
                values: vec![(x, 1.0)],
            }
        } else if let Some(s) = stats {
            let sat = format!("{at}StatisticValues.");
            let s = object(s, &sat)?;
            only(s, &["SampleCount", "Sum", "Minimum", "Maximum"], &sat)?;
            let get = |k: &str| -> Result<f64, ApiError> {
                number(
                    s.get(k).ok_or_else(|| missing(&format!("{sat}{k}")))?,
                    &format!("{sat}{k}"),
                )
            };
            let (count, sum, min, max) = (
                get("SampleCount")?,
                get("Sum")?,
                get("Minimum")?,
                get("Maximum")?,
            );
            if count <= 0.0 || min > max {
                return Err(invalid(format!(
                    "The parameter {sat} is invalid: SampleCount must be positive and Minimum not above Maximum."
                )));
            }
            Point {
                t,
                unit: unit.map(str::to_string),
                sum,
                count,
                min,
                max,
                values: Vec::new(),
            }
        } else if !values.is_empty() {
            if values.len() > MAX_VALUES {
                return Err(invalid(format!(
                    "The collection {at}Values must not have a size greater than {MAX_VALUES}."
                )));
            }
            if !counts.is_empty() && counts.len() != values.len() {
                return Err(invalid(format!(
                    "The parameters {at}Values and {at}Counts must be of the same size."
                )));
            }
            let mut pairs = Vec::with_capacity(values.len());
            for (j, x) in values.iter().enumerate() {
                let x = number(x, &format!("{at}Values.member.{}", j + 1))?;
                let c = match counts.get(j) {
                    Some(c) => number(c, &format!("{at}Counts.member.{}", j + 1))?,
                    None => 1.0,
                };
                if c < 0.0 {
                    return Err(invalid(format!(
                        "The value {c} for parameter {at}Counts.member.{} is invalid: counts must not be negative.",
                        j + 1
                    )));
                }
                pairs.push((x, c));
            }
            let weighted: Vec<&(f64, f64)> = pairs.iter().filter(|(_, c)| *c > 0.0).collect();
            let count: f64 = weighted.iter().map(|(_, c)| c).sum();
            Point {
                t,
                unit: unit.map(str::to_string),
                sum: weighted.iter().map(|(x, c)| x * c).sum(),
                count,
                min: weighted
                    .iter()
                    .map(|(x, _)| *x)
                    .fold(f64::INFINITY, f64::min),
                max: weighted
                    .iter()
                    .map(|(x, _)| *x)
                    .fold(f64::NEG_INFINITY, f64::max),
                values: pairs,
            }
        } else {
            return Err(missing(&format!("{at}Value")));
        };
        if point.count <= 0.0 {
            // All counts zero: nothing was observed.
            continue;
        }
        out.push((
            Key {
                namespace: ns.clone(),
                name: name.to_string(),
                dimensions: dims,
            },
            point,
        ));
    }
    Ok(Op { now, data: out })
}

/// A statistic GetMetricData computes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stat {
    Average,
    Sum,
    Minimum,
    Maximum,
    SampleCount,
    /// pNN (0–100).
    Percentile(f64),
}

fn stat(s: &str, at: &str) -> Result<Stat, ApiError> {
    Ok(match s {
        "Average" => Stat::Average,
        "Sum" => Stat::Sum,
        "Minimum" => Stat::Minimum,
        "Maximum" => Stat::Maximum,
        "SampleCount" => Stat::SampleCount,
        p => match p
            .strip_prefix('p')
            .and_then(|n| n.parse::<f64>().ok())
            .filter(|n| (0.0..=100.0).contains(n))
        {
            Some(n) => Stat::Percentile(n),
            None => {
                return Err(invalid(format!(
                    "The value {s} for parameter {at}Stat is invalid: the local cloud computes Average, Sum, Minimum, Maximum, SampleCount and pNN percentiles."
                )));
            }
        },
    })
}

/// One period's statistic of `points`; `None` when it has none (a percentile of
/// datums that gave only `StatisticValues`).
fn compute(points: &[&Point], s: Stat) -> Option<f64> {
    let count: f64 = points.iter().map(|p| p.count).sum();
    let sum: f64 = points.iter().map(|p| p.sum).sum();
    Some(match s {
        Stat::Average => sum / count,
        Stat::Sum => sum,
        Stat::SampleCount => count,
        Stat::Minimum => points.iter().map(|p| p.min).fold(f64::INFINITY, f64::min),
        Stat::Maximum => points
            .iter()
            .map(|p| p.max)
            .fold(f64::NEG_INFINITY, f64::max),
        Stat::Percentile(q) => {
            let mut v: Vec<(f64, f64)> = points
                .iter()
                .flat_map(|p| p.values.iter().copied())
                .filter(|(_, c)| *c > 0.0)
                .collect();
            if v.is_empty() {
                return None;
            }
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            let total: f64 = v.iter().map(|(_, c)| c).sum();
            // Nearest rank: the smallest value with at least q% of the samples at or below it.
            let rank = (q / 100.0 * total).ceil().max(1.0);
            let mut seen = 0.0;
            let mut out = v[v.len() - 1].0;
            for (x, c) in &v {
                seen += c;
                if seen >= rank {
                    out = *x;
                    break;
                }
            }
            out
        }
    })
}

/// GetMetricData.
pub fn get(m: &Metrics, input: &Value) -> Result<Value, ApiError> {
    let v = object(input, "The request")?;
    only(
        v,
        &[
            "MetricDataQueries",
            "StartTime",
            "EndTime",
            "NextToken",
            "ScanBy",
            "MaxDatapoints",
            "LabelOptions",
        ],
        "",
    )?;
    let start = timestamp(
        v.get("StartTime").ok_or_else(|| missing("StartTime"))?,
        "StartTime",
    )?;
    let end = timestamp(
        v.get("EndTime").ok_or_else(|| missing("EndTime"))?,
        "EndTime",
    )?;
    if start >= end {
        return Err(invalid(
            "The parameter StartTime must be less than the parameter EndTime.",
        ));
    }
    let ascending = match text(v, "ScanBy", "", 32)? {
        None | Some("TimestampDescending") => false,
        Some("TimestampAscending") => true,
        Some(s) => {
            return Err(invalid(format!(
                "The value {s} for parameter ScanBy is invalid: TimestampDescending or TimestampAscending."
            )));
        }
    };
    let max = match v.get("MaxDatapoints") {
        None | Some(Value::Null) => MAX_DATAPOINTS,
        Some(n) => n
            .as_u64()
            .filter(|n| *n >= 1)
            .ok_or_else(|| invalid("MaxDatapoints must be a positive integer"))?
            as usize,
    };
    let queries = array(v, "MetricDataQueries", "")?;
    if queries.is_empty() {
        return Err(missing("MetricDataQueries"));
    }
    if queries.len() > MAX_QUERIES {
        return Err(invalid(format!(
            "The collection MetricDataQueries must not have a size greater than {MAX_QUERIES}."
        )));
    }
    let mut ids = Vec::new();
    let mut results = Vec::new();
    let mut total = 0usize;
    for (i, q) in queries.iter().enumerate() {
        let at = format!("MetricDataQueries.member.{}.", i + 1);
        let q = object(q, &at)?;
        only(
            q,
            &[
                "Id",
                "MetricStat",
                "Expression",
                "Label",
                "ReturnData",
                "Period",
                "AccountId",
            ],
            &at,
        )?;
        let id = required(q, "Id", &at, 255)?;
        let mut chars = id.chars();
        if !chars.next().is_some_and(|c| c.is_ascii_lowercase())
            || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(invalid(format!(
                "The value {id} for parameter {at}Id is invalid: it must start with a lowercase letter and contain only letters, digits and underscores."
            )));
        }
        if ids.contains(&id) {
            return Err(invalid(format!(
                "The value {id} for parameter {at}Id is invalid: Ids must be unique."
            )));
        }
        ids.push(id);
        if q.get("Expression").is_some_and(|e| !e.is_null()) {
            return Err(invalid(format!(
                "{at}Expression: metric math and Metrics Insights queries are not supported by the local cloud; use MetricStat"
            )));
        }
        let ms = object(
            q.get("MetricStat")
                .ok_or_else(|| missing(&format!("{at}MetricStat")))?,
            &format!("{at}MetricStat"),
        )?;
        let mat = format!("{at}MetricStat.");
        only(ms, &["Metric", "Period", "Stat", "Unit"], &mat)?;
        let metric = object(
            ms.get("Metric")
                .ok_or_else(|| missing(&format!("{mat}Metric")))?,
            &format!("{mat}Metric"),
        )?;
        let mmat = format!("{mat}Metric.");
        only(metric, &["Namespace", "MetricName", "Dimensions"], &mmat)?;
        let key = Key {
            namespace: required(metric, "Namespace", &mmat, 255)?.to_string(),
            name: required(metric, "MetricName", &mmat, 255)?.to_string(),
            dimensions: dimensions(metric, &mmat)?,
        };
        let period = ms
            .get("Period")
            .ok_or_else(|| missing(&format!("{mat}Period")))?
            .as_u64()
            .filter(|p| matches!(p, 1 | 5 | 10 | 20 | 30) || (*p >= 60 && p.is_multiple_of(60)))
            .ok_or_else(|| {
                invalid(format!(
                    "The parameter {mat}Period must be 1, 5, 10, 20, 30 or a multiple of 60."
                ))
            })?;
        let s = stat(required(ms, "Stat", &mat, 100)?, &mat)?;
        let unit = text(ms, "Unit", &mat, 32)?;
        let return_data = q.get("ReturnData").and_then(Value::as_bool).unwrap_or(true);
        if !return_data {
            continue;
        }
        let label = text(q, "Label", &at, 2048)?.unwrap_or(&key.name);
        // Datapoints per period, aligned to multiples of the period since the epoch.
        let pms = period.saturating_mul(1000);
        let mut buckets: Vec<(u64, Vec<&Point>)> = Vec::new();
        for p in m.points(&key) {
            if p.t < start || p.t >= end || (unit.is_some() && p.unit.as_deref() != unit) {
                continue;
            }
            let b = p.t / pms * pms;
            match buckets.last_mut() {
                Some((t, ps)) if *t == b => ps.push(p),
                _ => buckets.push((b, vec![p])),
            }
        }
        let mut points: Vec<(u64, f64)> = buckets
            .iter()
            .filter_map(|(t, ps)| compute(ps, s).map(|x| (*t, x)))
            .collect();
        if !ascending {
            points.reverse();
        }
        let room = max.saturating_sub(total);
        let partial = points.len() > room;
        points.truncate(room);
        total += points.len();
        let secs = |t: u64| -> Value {
            if t.is_multiple_of(1000) {
                json!(t / 1000)
            } else {
                json!(t as f64 / 1000.0)
            }
        };
        results.push(json!({
            "Id": id,
            "Label": label,
            "Timestamps": points.iter().map(|(t, _)| secs(*t)).collect::<Vec<_>>(),
            "Values": points.iter().map(|(_, x)| x).collect::<Vec<_>>(),
            "StatusCode": if partial { "PartialData" } else { "Complete" },
            "Messages": [],
        }));
    }
    Ok(json!({ "MetricDataResults": results, "Messages": [] }))
}

/// ListMetrics: the metrics that have datapoints, filtered, 500 a page; the
/// token is the page's offset.
pub fn list(m: &Metrics, input: &Value) -> Result<Value, ApiError> {
    let v = object(input, "The request")?;
    only(
        v,
        &[
            "Namespace",
            "MetricName",
            "Dimensions",
            "NextToken",
            "RecentlyActive",
            "IncludeLinkedAccounts",
            "OwningAccount",
        ],
        "",
    )?;
    let ns = text(v, "Namespace", "", 255)?;
    let name = text(v, "MetricName", "", 255)?;
    match text(v, "RecentlyActive", "", 8)? {
        None | Some("PT3H") => {}
        Some(r) => {
            return Err(invalid(format!(
                "The value {r} for parameter RecentlyActive is invalid: PT3H is the only value."
            )));
        }
    }
    let recent = v.get("RecentlyActive").is_some_and(|r| !r.is_null());
    // Dimension filters: a Name, with or without a Value.
    let filters = array(v, "Dimensions", "")?;
    if filters.len() > 10 {
        return Err(invalid(
            "The collection Dimensions must not have a size greater than 10.",
        ));
    }
    let mut want = Vec::new();
    for (i, f) in filters.iter().enumerate() {
        let at = format!("Dimensions.member.{}.", i + 1);
        let f = object(f, &at)?;
        only(f, &["Name", "Value"], &at)?;
        want.push((
            required(f, "Name", &at, 255)?.to_string(),
            text(f, "Value", &at, 1024)?.map(str::to_string),
        ));
    }
    let start = match text(v, "NextToken", "", 64)? {
        None => 0,
        Some(t) => t
            .strip_prefix("page-")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                ApiError::bad("InvalidNextToken", format!("The token {t} is not valid."))
                    .with_query_code("InvalidNextToken")
            })?,
    };
    let newest = m
        .keys()
        .flat_map(|k| m.points(k).last().map(|p| p.t))
        .max()
        .unwrap_or(0)
        .max(crate::now_ms());
    let matching: Vec<&Key> = m
        .keys()
        .filter(|k| ns.is_none_or(|n| k.namespace == n))
        .filter(|k| name.is_none_or(|n| k.name == n))
        .filter(|k| {
            want.iter().all(|(n, val)| {
                k.dimensions
                    .iter()
                    .any(|(kn, kv)| kn == n && val.as_ref().is_none_or(|v| v == kv))
            })
        })
        .filter(|k| {
            !recent
                || m.points(k)
                    .last()
                    .is_some_and(|p| p.t + 3 * 3_600_000 >= newest)
        })
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(PAGE)
        .map(|k| {
            json!({
                "Namespace": k.namespace,
                "MetricName": k.name,
                "Dimensions": k.dimensions.iter().map(|(n, v)| json!({"Name": n, "Value": v})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut out = json!({ "Metrics": page });
    if start.saturating_add(PAGE) < matching.len() {
        out["NextToken"] = json!(format!("page-{}", start + PAGE));
    }
    Ok(out)
}
