//! `metrics`, `activity` and `alarms`: what the supervisor keeps of the local
//! cloud's metrics, scaling and alarms (`pantstack_local::supervisor`), as
//! tables or JSON.

use super::*;
use crate::args::{ActivityArgs, AlarmsArgs, MetricsArgs};

fn duration(flag: &str, text: &str) -> Result<u64, Failure> {
    pantstack_manifest::read::parse_duration(text)
        .filter(|s| *s > 0)
        .ok_or_else(|| {
            Failure::Usage(format!(
                "{flag} `{text}` is not a duration: write it like `90s`, `15m` or `2h`"
            ))
        })
}

/// Asks the supervisor; with `--format json` prints its answer and gives `None`.
fn ask(
    global: &Global,
    out: &Out,
    env: Option<&str>,
    request: Request,
) -> Result<Option<Value>, Failure> {
    let (_, paths) = socket_of(global, env)?;
    let rt = runtime()?;
    let v = call_short(&rt, &paths, request)?;
    if let Some(e) = control::Reply::of(&v).error {
        return Err(Failure::Resolve(e));
    }
    if out.json() {
        println!("{v}");
        return Ok(None);
    }
    Ok(Some(v))
}

pub fn metrics(global: &Global, out: &Out, a: &MetricsArgs) -> Result<(), Failure> {
    let since = duration("--since", &a.since)?;
    let period = a
        .period
        .as_deref()
        .map(|p| duration("--period", p))
        .transpose()?;
    if let Some(p) = period
        && !(matches!(p, 1 | 5 | 10 | 20 | 30) || p % 60 == 0)
    {
        return Err(Failure::Usage(format!(
            "--period {p}s: a period is 1, 5, 10, 20 or 30 s or a multiple of 60 s (as CloudWatch's GetMetricData)"
        )));
    }
    let request = Request::Metrics {
        service: a.service.clone(),
        metric: a.metric.clone(),
        since_s: Some(since),
        period_s: period,
        stat: a.stat.clone(),
    };
    let Some(v) = ask(global, out, a.env.as_deref(), request)? else {
        return Ok(());
    };
    let series = v["series"].as_array().cloned().unwrap_or_default();
    if series.is_empty() {
        match &a.metric {
            Some(m) => println!(
                "no metric `{m}` of {}: `pantstack metrics{}` lists the ones there are (names as CloudWatch spells them, e.g. CPUUtilization, RequestCount, TargetResponseTime)",
                a.service.as_deref().unwrap_or("any service"),
                a.service
                    .as_deref()
                    .map(|s| format!(" {s}"))
                    .unwrap_or_default(),
            ),
            None => println!(
                "no datapoints yet: the first ones come one metrics period (local.metrics.period) after the tasks start"
            ),
        }
        return Ok(());
    }
    let width = series
        .iter()
        .map(|s| {
            short_namespace(s["namespace"].as_str().unwrap_or("")).len()
                + s["metric"].as_str().unwrap_or("").len()
                + 1
        })
        .max()
        .unwrap_or(36)
        .max(6);
    println!(
        "{:<width$} {:<34} {:<8} {:>10} {:>10} {:>10}  TREND",
        "METRIC", "OF", "STAT", "LAST", "MIN", "MAX"
    );
    for s in &series {
        let values: Vec<f64> = s["points"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p[1].as_f64())
            .collect();
        let last = values.last().copied();
        let min = values.iter().copied().reduce(f64::min);
        let max = values.iter().copied().reduce(f64::max);
        println!(
            "{:<width$} {:<34} {:<8} {:>10} {:>10} {:>10}  {}",
            format!(
                "{}/{}",
                short_namespace(s["namespace"].as_str().unwrap_or("")),
                s["metric"].as_str().unwrap_or("")
            ),
            of(&s["dimensions"]),
            s["stat"].as_str().unwrap_or(""),
            number(last),
            number(min),
            number(max),
            sparkline(&values, 24),
        );
    }
    println!("(period {} s)", v["period_s"]);
    Ok(())
}

fn short_namespace(ns: &str) -> &str {
    ns.strip_prefix("AWS/").unwrap_or(ns)
}

/// What a series is of: its task, queue, or unit.
fn of(dims: &Value) -> String {
    let get = |k: &str| dims[k].as_str();
    if let (Some(s), Some(t)) = (get("ServiceName"), get("TaskId")) {
        return format!("{s} task {t}");
    }
    if let Some(q) = get("QueueName") {
        return q.to_string();
    }
    if let Some(s) = get("ServiceName") {
        return s.to_string();
    }
    if let Some(tg) = get("TargetGroup") {
        return tg.to_string();
    }
    dims.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn number(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x.abs() >= 1000.0 || x.fract() == 0.0 => format!("{x:.0}"),
        Some(x) if x.abs() >= 1.0 => format!("{x:.2}"),
        Some(x) => format!("{x:.4}"),
    }
}

/// The last `width` values as bars.
fn sparkline(values: &[f64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let tail = &values[values.len().saturating_sub(width)..];
    let (lo, hi) = tail
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(*v), b.max(*v))
        });
    tail.iter()
        .map(|v| {
            if hi > lo {
                BARS[(((v - lo) / (hi - lo)) * 7.0).round() as usize]
            } else {
                BARS[0]
            }
        })
        .collect()
}

pub fn activity(global: &Global, out: &Out, a: &ActivityArgs) -> Result<(), Failure> {
    let request = Request::Activity {
        service: a.service.clone(),
    };
    let Some(v) = ask(global, out, a.env.as_deref(), request)? else {
        return Ok(());
    };
    let list = v["activities"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no scaling activity yet");
        return Ok(());
    }
    for x in &list {
        println!(
            "{}  {:<16} {} → {}  {}  {}",
            x["time"].as_str().unwrap_or(""),
            x["unit"].as_str().unwrap_or(""),
            x["from"],
            x["to"],
            x["status"].as_str().unwrap_or(""),
            x["cause"].as_str().unwrap_or(""),
        );
    }
    Ok(())
}

pub fn alarms(global: &Global, out: &Out, a: &AlarmsArgs) -> Result<(), Failure> {
    let request = Request::Alarms {
        service: a.service.clone(),
    };
    let Some(v) = ask(global, out, a.env.as_deref(), request)? else {
        return Ok(());
    };
    let list = v["alarms"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("no alarms");
        return Ok(());
    }
    println!("{:<18} {:<48} {:<30} REASON", "STATE", "ALARM", "METRIC");
    for x in &list {
        println!(
            "{:<18} {:<48} {:<30} {}",
            x["state"].as_str().unwrap_or(""),
            x["name"].as_str().unwrap_or(""),
            x["metric"].as_str().unwrap_or(""),
            x["reason"].as_str().unwrap_or(""),
        );
        if a.history {
            for h in x["history"].as_array().into_iter().flatten() {
                println!(
                    "    {}  {} → {}  {}",
                    h["time"].as_str().unwrap_or(""),
                    h["from"].as_str().unwrap_or(""),
                    h["to"].as_str().unwrap_or(""),
                    h["reason"].as_str().unwrap_or(""),
                );
            }
        }
    }
    Ok(())
}
