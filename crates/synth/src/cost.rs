//! What an environment costs a month on AWS, estimated from its synthesized
//! templates and a dated price table kept in the repository
//! (`crates/synth/prices/aws-prices.json`).
//!
//! Counted: Fargate vCPU and GB hours of every ECS service at its minimum and its
//! maximum task count, split between FARGATE and FARGATE_SPOT as its capacity
//! provider strategy splits them (the base on FARGATE, the rest by weight); load
//! balancer hours, LCUs (an assumed average) and their public IPv4 addresses (one
//! per subnet); NAT gateways and their addresses; interface endpoints per subnet;
//! KMS keys; alarms and dashboards; log ingestion (an assumed volume per task).
//! Not counted (they depend on traffic and data, not on the model): requests to
//! SQS, S3 storage and requests, data processed by NAT and endpoints, ECR storage,
//! transfer out.
//!
//! Pure: the same templates and table give the same figures.

use crate::Output;
use serde_json::{Value, json};

/// The table shipped with this version.
pub const PRICES: &str = include_str!("../prices/aws-prices.json");

/// Prices of one region, and the table's hours and assumptions.
#[derive(Clone, Debug)]
pub struct Prices {
    pub date: String,
    pub hours: f64,
    pub lcu: f64,
    pub log_gb_per_task: f64,
    pub rates: Value,
}

impl Prices {
    /// The table's prices for `region`, or why there are none.
    pub fn for_region(table: &str, region: &str) -> Result<Prices, String> {
        let t: Value =
            serde_json::from_str(table).map_err(|e| format!("the price table is not JSON: {e}"))?;
        let rates = t["regions"][region].clone();
        if !rates.is_object() {
            let known: Vec<&str> = t["regions"]
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            return Err(format!(
                "the price table (dated {}) has no prices for {region}; it has {}: add the region to crates/synth/prices/aws-prices.json",
                t["date"].as_str().unwrap_or("?"),
                known.join(", ")
            ));
        }
        Ok(Prices {
            date: t["date"].as_str().unwrap_or_default().to_string(),
            hours: t["hours_per_month"].as_f64().unwrap_or(730.0),
            lcu: t["assumptions"]["alb_lcu_average"].as_f64().unwrap_or(1.0),
            log_gb_per_task: t["assumptions"]["log_gb_per_task_month"]
                .as_f64()
                .unwrap_or(0.5),
            rates,
        })
    }

    fn rate(&self, key: &str) -> f64 {
        self.rates[key].as_f64().unwrap_or(0.0)
    }
}

/// One line of the bill.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// The stack it belongs to (`shop-test-api`, `shop-test-foundation`).
    pub stack: String,
    /// What it is (`ECS service Service: 2 tasks (2 FARGATE, 0 FARGATE_SPOT)`).
    pub item: String,
    /// Monthly, at the services' minimum task counts.
    pub min: f64,
    /// Monthly, at the services' maximum task counts.
    pub max: f64,
}

/// Tasks on FARGATE and on FARGATE_SPOT when `n` run under a strategy with
/// `base` tasks on FARGATE first and the rest split by weight.
pub fn split(n: f64, base: f64, on_demand_weight: f64, spot_weight: f64) -> (f64, f64) {
    let first = n.min(base);
    let rest = n - first;
    let total = on_demand_weight + spot_weight;
    if total <= 0.0 {
        return (n, 0.0);
    }
    (
        first + rest * on_demand_weight / total,
        rest * spot_weight / total,
    )
}

/// An ECS service's capacity provider strategy as its template writes it:
/// (tasks always on FARGATE first, FARGATE weight, FARGATE_SPOT weight). A
/// provider the strategy leaves out has weight 0; no strategy at all is
/// FARGATE alone (the launch type's default).
pub fn strategy(list: &Value) -> (u64, u64, u64) {
    let Some(items) = list.as_array().filter(|a| !a.is_empty()) else {
        return (0, 1, 0);
    };
    let (mut base, mut od, mut spot) = (0, 0, 0);
    for s in items {
        let n = |k: &str| num(&s[k]).max(0.0) as u64;
        match s["CapacityProvider"].as_str() {
            Some("FARGATE") => {
                base = n("Base");
                od = n("Weight");
            }
            Some("FARGATE_SPOT") => spot = n("Weight"),
            _ => {}
        }
    }
    (base, od, spot)
}

/// Whole tasks on FARGATE and on FARGATE_SPOT when `n` run under a strategy:
/// the first `base` on FARGATE, each further one on the provider that stays
/// closest to the weights (weighted round robin, Spot on a tie) — the rule
/// the local cloud's Spot drill places tasks by (`pantstack-local`'s
/// `core::spot::placement`).
pub fn placed(n: u64, base: u64, on_demand_weight: u64, spot_weight: u64) -> (u64, u64) {
    let first = n.min(base);
    let rest = n - first;
    if spot_weight == 0 {
        return (n, 0);
    }
    if on_demand_weight == 0 {
        return (first, rest);
    }
    let (mut od, mut spot) = (0u64, 0u64);
    for _ in 0..rest {
        if (spot + 1) * on_demand_weight <= (od + 1) * spot_weight {
            spot += 1;
        } else {
            od += 1;
        }
    }
    (first + od, spot)
}

fn resources(t: &Value) -> Vec<(&String, &Value)> {
    t["Resources"]
        .as_object()
        .map(|o| o.iter().collect())
        .unwrap_or_default()
}

fn num(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or(0.0)
}

/// The lines of every template of `output`.
pub fn estimate(output: &Output, p: &Prices) -> Vec<Line> {
    let h = p.hours;
    let mut lines = Vec::new();
    // An internet-facing load balancer has an address in each public subnet; its
    // template names them through the foundation's exports.
    let public_subnets = output
        .files
        .iter()
        .filter_map(|f| serde_json::from_str::<Value>(&f.contents).ok())
        .map(|t| {
            resources(&t)
                .iter()
                .filter(|(id, r)| r["Type"] == "AWS::EC2::Subnet" && id.starts_with("PublicSubnet"))
                .count()
        })
        .sum::<usize>() as f64;
    for f in &output.files {
        let Some(stack) = f.name.strip_suffix(".json") else {
            continue;
        };
        if f.name == crate::plan::FILE {
            continue;
        }
        let Ok(t) = serde_json::from_str::<Value>(&f.contents) else {
            continue;
        };
        let rs = resources(&t);
        let mut push = |item: String, min: f64, max: f64| {
            if min > 0.0 || max > 0.0 {
                lines.push(Line {
                    stack: stack.to_string(),
                    item,
                    min,
                    max,
                });
            }
        };
        let mut tasks = (0.0, 0.0);
        for (id, r) in &rs {
            let props = &r["Properties"];
            match r["Type"].as_str().unwrap_or_default() {
                "AWS::ECS::Service" => {
                    let td = props["TaskDefinition"]["Ref"].as_str().unwrap_or_default();
                    let tdp = &t["Resources"][td]["Properties"];
                    let vcpu = num(&tdp["Cpu"]) / 1024.0;
                    let gb = num(&tdp["Memory"]) / 1024.0;
                    // `Service` ↔ `ScalingTarget`, `ServiceWorker` ↔ `ScalingTargetWorker`.
                    let suffix = id.strip_prefix("Service").unwrap_or_default();
                    let st = &t["Resources"][format!("ScalingTarget{suffix}")]["Properties"];
                    let (lo, hi) = (num(&st["MinCapacity"]), num(&st["MaxCapacity"]));
                    let (base, od, spot) = strategy(&props["CapacityProviderStrategy"]);
                    let (base, od, spot) = (base as f64, od as f64, spot as f64);
                    let cost = |n: f64| {
                        let (o, s) = split(n, base, od, spot);
                        o * h
                            * (vcpu * p.rate("fargate_vcpu_hour") + gb * p.rate("fargate_gb_hour"))
                            + s * h
                                * (vcpu * p.rate("fargate_spot_vcpu_hour")
                                    + gb * p.rate("fargate_spot_gb_hour"))
                    };
                    let (o, s) = split(lo, base, od, spot);
                    push(
                        format!(
                            "ECS {id}: {vcpu} vCPU {gb} GB × {lo}..{hi} ({o:.1} on-demand + {s:.1} spot at {lo})"
                        ),
                        cost(lo),
                        cost(hi),
                    );
                    tasks.0 += lo;
                    tasks.1 += hi;
                }
                "AWS::ElasticLoadBalancingV2::LoadBalancer" => {
                    let ips = props["Subnets"]
                        .as_array()
                        .map(|a| a.len() as f64)
                        .unwrap_or(public_subnets);
                    let m = h
                        * (p.rate("alb_hour")
                            + p.lcu * p.rate("alb_lcu_hour")
                            + ips * p.rate("public_ipv4_hour"));
                    push(
                        format!("{id}: hours, {} LCU (assumed), {ips} IPv4", p.lcu),
                        m,
                        m,
                    );
                }
                "AWS::EC2::NatGateway" => {
                    let m = h * (p.rate("nat_gateway_hour") + p.rate("public_ipv4_hour"));
                    push(format!("NAT gateway {id} and its address"), m, m);
                }
                "AWS::EC2::VPCEndpoint" if props["VpcEndpointType"] == "Interface" => {
                    let azs = props["SubnetIds"].as_array().map(Vec::len).unwrap_or(0) as f64;
                    let m = h * azs * p.rate("interface_endpoint_az_hour");
                    push(format!("interface endpoint {id} in {azs} subnets"), m, m);
                }
                "AWS::KMS::Key" => {
                    let m = p.rate("kms_key_month");
                    push(format!("KMS key {id}"), m, m);
                }
                _ => {}
            }
        }
        let count = |ty: &str| rs.iter().filter(|(_, r)| r["Type"] == ty).count() as f64;
        // An alarm is priced per metric it reads (a metric-math alarm: each of
        // its metrics); target tracking creates two alarms per policy.
        let alarm_metrics: f64 = rs
            .iter()
            .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
            .map(|(_, r)| {
                r["Properties"]["Metrics"]
                    .as_array()
                    .map(|m| {
                        m.iter()
                            .filter(|x| x.get("MetricStat").is_some())
                            .count()
                            .max(1) as f64
                    })
                    .unwrap_or(1.0)
            })
            .sum();
        let tracking = rs
            .iter()
            .filter(|(_, r)| {
                r["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy"
                    && r["Properties"]["PolicyType"] == "TargetTrackingScaling"
            })
            .count() as f64;
        let alarms = alarm_metrics + 2.0 * tracking;
        if alarms > 0.0 {
            let m = alarms * p.rate("cloudwatch_alarm_month");
            push(
                format!(
                    "CloudWatch alarm metrics: {alarm_metrics} (alarms) + {} (target tracking)",
                    2.0 * tracking
                ),
                m,
                m,
            );
        }
        let dashboards = count("AWS::CloudWatch::Dashboard");
        if dashboards > 0.0 {
            // The account's first three dashboards are free; not counted here.
            let m = dashboards * p.rate("cloudwatch_dashboard_month");
            push(format!("{dashboards} CloudWatch dashboard(s)"), m, m);
        }
        if tasks.1 > 0.0 {
            let gb = p.log_gb_per_task;
            push(
                format!("logs: {gb} GB per task ingested (assumed)"),
                tasks.0 * gb * p.rate("logs_ingest_gb"),
                tasks.1 * gb * p.rate("logs_ingest_gb"),
            );
        }
    }
    lines
}

fn cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The estimate as JSON: lines, totals per stack and for the environment. A
/// preview's foundation is every preview's: its lines are listed as `shared`
/// and left out of the preview's total.
pub fn report(env: &str, region: &str, p: &Prices, lines: &[Line]) -> Value {
    let shared_stack = env
        .starts_with(pantstack_model::foundation::PREVIEW_PREFIX)
        .then(|| {
            lines
                .iter()
                .map(|l| l.stack.as_str())
                .find(|s| s.ends_with("-preview-foundation"))
        })
        .flatten()
        .map(str::to_string);
    let is_shared = |l: &Line| shared_stack.as_deref() == Some(l.stack.as_str());
    let mut stacks: Vec<(String, f64, f64)> = Vec::new();
    for l in lines {
        match stacks.iter_mut().find(|s| s.0 == l.stack) {
            Some(s) => {
                s.1 += l.min;
                s.2 += l.max;
            }
            None => stacks.push((l.stack.clone(), l.min, l.max)),
        }
    }
    json!({
        "environment": env,
        "region": region,
        "prices_dated": p.date,
        "currency": "USD",
        "per": "month",
        "lines": lines.iter().map(|l| json!({ "stack": l.stack, "item": l.item, "min": cents(l.min), "max": cents(l.max) })).collect::<Vec<_>>(),
        "stacks": stacks.iter().map(|s| json!({ "stack": s.0, "min": cents(s.1), "max": cents(s.2) })).collect::<Vec<_>>(),
        "total": {
            "min": cents(lines.iter().filter(|l| !is_shared(l)).map(|l| l.min).sum()),
            "max": cents(lines.iter().filter(|l| !is_shared(l)).map(|l| l.max).sum()),
        },
        "shared": shared_stack.as_ref().map(|s| json!({
            "stack": s,
            "note": "every preview's foundation, counted once for all of them, not in this preview's total",
            "min": cents(lines.iter().filter(|l| is_shared(l)).map(|l| l.min).sum()),
        })),
        "not_counted": "traffic- and data-dependent charges: SQS and S3 requests, S3 and ECR storage, NAT and endpoint data processing, transfer out, Container Insights metrics, VPC flow-log ingestion",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_runs_on_demand_and_the_rest_by_weight() {
        assert_eq!(split(1.0, 1.0, 1.0, 4.0), (1.0, 0.0));
        assert_eq!(split(6.0, 1.0, 1.0, 4.0), (2.0, 4.0));
        assert_eq!(split(3.0, 0.0, 0.0, 1.0), (0.0, 3.0));
        assert_eq!(split(2.0, 0.0, 0.0, 0.0), (2.0, 0.0));
    }

    #[test]
    fn whole_tasks_are_placed_by_weighted_round_robin() {
        assert_eq!(placed(1, 1, 1, 4), (1, 0));
        assert_eq!(placed(6, 1, 1, 4), (2, 4));
        assert_eq!(placed(3, 1, 1, 4), (1, 2));
        assert_eq!(placed(10, 2, 1, 1), (6, 4));
        assert_eq!(placed(5, 0, 0, 1), (0, 5));
        assert_eq!(placed(5, 2, 0, 1), (2, 3));
        assert_eq!(placed(4, 0, 1, 0), (4, 0));
        // Without a strategy: FARGATE alone; a provider left out weighs 0.
        assert_eq!(strategy(&Value::Null), (0, 1, 0));
        let spot_only = serde_json::json!([{ "CapacityProvider": "FARGATE_SPOT", "Weight": 3 }]);
        assert_eq!(strategy(&spot_only), (0, 0, 3));
    }
}
