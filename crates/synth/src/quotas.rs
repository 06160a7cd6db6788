//! Will the monorepo fit an AWS account's quotas? Every environment is
//! synthesized (each long-lived one, and `previews.max` previews), its templates
//! counted, and the totals per region (or per account) compared with AWS's
//! default quotas, or with the values an account applies (`Applied`, read from
//! Service Quotas by `pantstack-deploy::quotas`). Pure: nothing here contacts
//! AWS; each quota in the report says whether its limit came from the account
//! or is the default, and why a default was used.

use crate::{Options, Output, synth};
use pantstack_manifest::Diagnostic;
use pantstack_model::Monorepo;
use pantstack_model::foundation::PREVIEW_PREFIX;
use pantstack_model::settings::{Layer, keys};
use serde_json::{Value, json};

/// A default quota: what it limits, its default, and where it applies.
pub struct Quota {
    pub name: &'static str,
    pub default: u64,
    /// `region`, `account` or `load balancer`.
    pub scope: &'static str,
    pub fix: &'static str,
    /// Its Service Quotas service code, and quota code where Service Quotas has
    /// one (target groups per load balancer it has not).
    pub service: &'static str,
    pub code: Option<&'static str>,
    /// What of an environment's templates it counts.
    pub measure: Measure,
}

/// What a quota counts in an environment's templates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    LoadBalancers,
    TargetGroups,
    RulesPerLoadBalancer,
    TargetGroupsPerLoadBalancer,
    TargetsPerLoadBalancer,
    Roles,
    Stacks,
    Vpcs,
    ElasticIps,
    Buckets,
    /// vCPUs of the tasks on FARGATE (task vCPU × tasks the capacity
    /// provider strategy places there), at the minimum and maximum task counts.
    FargateOnDemandVcpus,
    /// The same on FARGATE_SPOT.
    FargateSpotVcpus,
}

impl Measure {
    fn fargate(self) -> Option<Capacity> {
        match self {
            Measure::FargateOnDemandVcpus => Some(Capacity::OnDemand),
            Measure::FargateSpotVcpus => Some(Capacity::Spot),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Capacity {
    OnDemand,
    Spot,
}

/// Quota values an account applies, as Service Quotas answered them.
#[derive(Clone, Debug, Default)]
pub struct Applied {
    /// (region, or `account` for account-wide quotas; quota code; value).
    pub values: Vec<(String, String, u64)>,
    /// Why quotas keep their defaults: (region or `account`, quota code,
    /// reason) for each that Service Quotas did not answer.
    pub unanswered: Vec<(String, String, String)>,
}

impl Applied {
    fn value(&self, scope: &str, code: &str) -> Option<u64> {
        self.values
            .iter()
            .find(|(s, c, _)| s == scope && c == code)
            .map(|(_, _, v)| *v)
    }

    fn unanswered(&self, scope: &str, code: &str) -> Option<&str> {
        self.unanswered
            .iter()
            .find(|(s, x, _)| s == scope && x == code)
            .map(|(_, _, why)| why.as_str())
    }
}

/// The limit a quota has where it applies: the account's value, or the default
/// and why (`None` without `applied`: defaults were asked for).
fn limit(q: &Quota, scope: &str, applied: Option<&Applied>) -> (u64, &'static str, Option<String>) {
    let Some(a) = applied else {
        return (q.default, "default", None);
    };
    let Some(code) = q.code else {
        return (
            q.default,
            "default",
            Some("Service Quotas has no code for this quota".into()),
        );
    };
    if let Some(v) = a.value(scope, code) {
        return (v, "account", None);
    }
    let why = a
        .unanswered(scope, code)
        .map(str::to_string)
        .unwrap_or_else(|| format!("Service Quotas gave no value for {}/{code}", q.service));
    (q.default, "default", Some(why))
}

pub const QUOTAS: &[Quota] = &[
    Quota {
        name: "Application Load Balancers",
        default: 50,
        scope: "region",
        fix: "`network.load_balancer: shared` (one set of load balancers per environment), fewer previews (`previews.max`), or a quota increase",
        service: "elasticloadbalancing",
        code: Some("L-53DA6B97"),
        measure: Measure::LoadBalancers,
    },
    Quota {
        name: "Target groups",
        default: 3000,
        scope: "region",
        fix: "a quota increase",
        service: "elasticloadbalancing",
        code: Some("L-B22855CB"),
        measure: Measure::TargetGroups,
    },
    Quota {
        name: "Listener rules per Application Load Balancer",
        default: 100,
        scope: "load balancer",
        fix: "fewer `http.rules`, or a quota increase",
        service: "elasticloadbalancing",
        code: Some("L-7EED9B64"),
        measure: Measure::RulesPerLoadBalancer,
    },
    Quota {
        name: "Target groups per Application Load Balancer",
        default: 100,
        scope: "load balancer",
        fix: "a quota increase",
        service: "elasticloadbalancing",
        code: None,
        measure: Measure::TargetGroupsPerLoadBalancer,
    },
    Quota {
        name: "Targets per Application Load Balancer (most tasks, with a deployment's new ones: `deployment.max_percent`)",
        default: 1000,
        scope: "load balancer",
        fix: "more shared load balancers (`network.load_balancers`), a lower `scaling.max` or `deployment.max_percent`, or a quota increase",
        service: "elasticloadbalancing",
        code: Some("L-7E6692B2"),
        measure: Measure::TargetsPerLoadBalancer,
    },
    Quota {
        name: "IAM roles",
        default: 1000,
        scope: "account",
        fix: "environments in another account (each long-lived environment and the previews' foundation hold a task role per service; previews add none), or a quota increase (up to 5,000)",
        service: "iam",
        code: Some("L-FE177D64"),
        measure: Measure::Roles,
    },
    Quota {
        name: "CloudFormation stacks",
        default: 2000,
        scope: "region",
        fix: "fewer previews (`previews.max`), or a quota increase",
        service: "cloudformation",
        code: Some("L-0485CB21"),
        measure: Measure::Stacks,
    },
    Quota {
        name: "VPCs",
        default: 5,
        scope: "region",
        fix: "environments in other regions or accounts, or a quota increase",
        service: "vpc",
        code: Some("L-F678F1CE"),
        measure: Measure::Vpcs,
    },
    Quota {
        name: "Elastic IP addresses",
        default: 5,
        scope: "region",
        fix: "`network.nat: single` where `per_az` is not needed, or a quota increase",
        service: "ec2",
        code: Some("L-0263D0A3"),
        measure: Measure::ElasticIps,
    },
    Quota {
        name: "S3 buckets",
        default: 10_000,
        scope: "account",
        fix: "a quota increase",
        service: "s3",
        code: Some("L-DC2B2D3D"),
        measure: Measure::Buckets,
    },
    // The Fargate vCPU quotas count the vCPUs of running tasks, per account and
    // region. Codes and defaults (6 each, adjustable) from AWS's General
    // Reference, "Amazon ECS endpoints and quotas"
    // (https://docs.aws.amazon.com/general/latest/gr/ecs-service.html, the
    // "Fargate On-Demand vCPU resource count" and "Fargate Spot vCPU resource
    // count" rows: "Each supported Region: 6"); the ECS guide's quota page says
    // new accounts may start lower and AWS raises them with use, so many
    // accounts have more (`--target aws` reads the applied value).
    Quota {
        name: "Fargate On-Demand vCPUs (tasks on FARGATE × task vCPU, at the most tasks)",
        default: 6,
        scope: "region",
        fix: "a lower `scaling.max` / `worker.scaling.max`, more tasks on Fargate Spot (`capacity.spot_weight`, a lower `capacity.on_demand_base`), or fewer previews (`previews.max`)",
        service: "fargate",
        code: Some("L-3032A538"),
        measure: Measure::FargateOnDemandVcpus,
    },
    Quota {
        name: "Fargate Spot vCPUs (tasks on FARGATE_SPOT × task vCPU, at the most tasks)",
        default: 6,
        scope: "region",
        fix: "a lower `scaling.max` / `worker.scaling.max`, fewer tasks on Spot (`capacity.on_demand_weight`), or fewer previews (`previews.max`)",
        service: "fargate",
        code: Some("L-36FBB829"),
        measure: Measure::FargateSpotVcpus,
    },
];

#[derive(Default, Clone, Debug)]
struct Count {
    albs: u64,
    target_groups: u64,
    roles: u64,
    stacks: u64,
    vpcs: u64,
    eips: u64,
    buckets: u64,
    /// Per load balancer: (stack/id, rules, target groups, targets at most).
    per_lb: Vec<(String, u64, u64, u64)>,
    /// Fargate vCPUs: (on FARGATE, on FARGATE_SPOT) at the services' minimum
    /// task counts, and at their maximum.
    vcpus_min: (f64, f64),
    vcpus_max: (f64, f64),
    /// The further vCPUs a deployment of every service at once starts beside the
    /// old tasks (up to `MaximumPercent`; a blue/green or canary deployment's
    /// full new set), at the minimum task counts and at the maximum.
    surge_min: (f64, f64),
    surge_max: (f64, f64),
}

impl Count {
    fn measure(&self, m: Measure) -> u64 {
        match m {
            Measure::LoadBalancers => self.albs,
            Measure::TargetGroups => self.target_groups,
            Measure::Roles => self.roles,
            Measure::Stacks => self.stacks,
            Measure::Vpcs => self.vpcs,
            Measure::ElasticIps => self.eips,
            Measure::Buckets => self.buckets,
            _ => 0,
        }
    }

    /// Fargate vCPUs on `capacity`: (at the minimum task counts, at the maximum).
    fn vcpus(&self, capacity: Capacity) -> (f64, f64) {
        match capacity {
            Capacity::OnDemand => (self.vcpus_min.0, self.vcpus_max.0),
            Capacity::Spot => (self.vcpus_min.1, self.vcpus_max.1),
        }
    }

    /// The deployment surge on `capacity`: (at the minimum task counts, at the
    /// maximum).
    fn surge(&self, capacity: Capacity) -> (f64, f64) {
        match capacity {
            Capacity::OnDemand => (self.surge_min.0, self.surge_max.0),
            Capacity::Spot => (self.surge_min.1, self.surge_max.1),
        }
    }
}

/// A template's Fargate vCPUs, each pair (on FARGATE, on FARGATE_SPOT).
#[derive(Default)]
struct Vcpus {
    min: (f64, f64),
    max: (f64, f64),
    surge_min: (f64, f64),
    surge_max: (f64, f64),
}

/// The vCPUs a template's ECS services ask of Fargate, on FARGATE and on
/// FARGATE_SPOT, at their minimum and at their maximum task counts (the
/// scalable target's `MinCapacity`/`MaxCapacity`), each task placed as its
/// capacity provider strategy places it (`cost::placed`); and what a
/// deployment adds while old and new tasks run side by side: a rolling one
/// up to `MaximumPercent` of the count (ECS rounds down), a blue/green or
/// canary one a full new set, its tasks placed by the same strategy.
fn fargate_vcpus(rs: &serde_json::Map<String, Value>) -> Vcpus {
    let mut v = Vcpus::default();
    let num = |v: &Value| {
        v.as_f64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .unwrap_or(0.0)
    };
    for (id, r) in rs {
        if r["Type"] != "AWS::ECS::Service" {
            continue;
        }
        let props = &r["Properties"];
        let td = props["TaskDefinition"]["Ref"].as_str().unwrap_or_default();
        let vcpu = rs.get(td).map_or(0.0, |t| num(&t["Properties"]["Cpu"])) / 1024.0;
        // `Service` ↔ `ScalingTarget`, `ServiceWorker` ↔ `ScalingTargetWorker`.
        let suffix = id.strip_prefix("Service").unwrap_or_default();
        let (lo, hi) = match rs.get(&format!("ScalingTarget{suffix}")) {
            Some(st) => (
                num(&st["Properties"]["MinCapacity"]),
                num(&st["Properties"]["MaxCapacity"]),
            ),
            None => {
                let n = props.get("DesiredCount").map_or(1.0, num);
                (n, n)
            }
        };
        let (base, od, spot) = crate::cost::strategy(&props["CapacityProviderStrategy"]);
        let deployment = &props["DeploymentConfiguration"];
        let mut pct = deployment["MaximumPercent"]
            .as_u64()
            .unwrap_or(200)
            .max(100);
        if deployment["Strategy"]
            .as_str()
            .is_some_and(|k| k == "BLUE_GREEN" || k == "CANARY")
        {
            pct = pct.max(200);
        }
        for (n, acc, surge) in [
            (lo, &mut v.min, &mut v.surge_min),
            (hi, &mut v.max, &mut v.surge_max),
        ] {
            let n = n.max(0.0) as u64;
            let (o, s) = crate::cost::placed(n, base, od, spot);
            acc.0 += o as f64 * vcpu;
            acc.1 += s as f64 * vcpu;
            let extra = (n * pct / 100).saturating_sub(n);
            let (o, s) = crate::cost::placed(extra, base, od, spot);
            surge.0 += o as f64 * vcpu;
            surge.1 += s as f64 * vcpu;
        }
    }
    v
}

fn count(o: &Output, shared_counted: bool) -> Count {
    let mut c = Count::default();
    // Shared load balancers: rules and target groups of the services on each,
    // by the listener their rules import.
    let shared_stack = format!("{}-shared.json", o.plan.project);
    let mut on_shared: Vec<(String, u64, u64, u64)> = Vec::new();
    for f in &o.files {
        if f.name == crate::plan::FILE {
            continue;
        }
        let shared = f.name == shared_stack;
        if shared && shared_counted {
            continue;
        }
        let Ok(t) = serde_json::from_str::<Value>(&f.contents) else {
            continue;
        };
        c.stacks += 1;
        let Some(rs) = t["Resources"].as_object() else {
            continue;
        };
        let v = fargate_vcpus(rs);
        for (acc, add) in [
            (&mut c.vcpus_min, v.min),
            (&mut c.vcpus_max, v.max),
            (&mut c.surge_min, v.surge_min),
            (&mut c.surge_max, v.surge_max),
        ] {
            acc.0 += add.0;
            acc.1 += add.1;
        }
        let mut rules = 0;
        let mut tgs = 0;
        let mut own_lb = None;
        let mut imported: Option<String> = None;
        // The HTTP role's most tasks, as many targets, doubled while a rolling
        // deployment runs old and new side by side (maximumPercent); blue/green
        // and canary run both sets in full (as `synth` counts them).
        let mut max_pct = rs
            .get("Service")
            .and_then(|s| s["Properties"]["DeploymentConfiguration"]["MaximumPercent"].as_u64())
            .unwrap_or(200);
        if rs.contains_key("AlternateTargetGroup") {
            max_pct = max_pct.max(200);
        }
        let targets = rs
            .get("ScalingTarget")
            .and_then(|s| s["Properties"]["MaxCapacity"].as_u64())
            .unwrap_or(0)
            * max_pct
            / 100;
        for (id, r) in rs {
            match r["Type"].as_str().unwrap_or_default() {
                "AWS::ElasticLoadBalancingV2::LoadBalancer" => {
                    c.albs += 1;
                    own_lb = Some(id.clone());
                }
                "AWS::ElasticLoadBalancingV2::TargetGroup" => {
                    c.target_groups += 1;
                    tgs += 1;
                }
                "AWS::ElasticLoadBalancingV2::ListenerRule" => {
                    rules += 1;
                    if let Some(l) = r["Properties"]["ListenerArn"]["Fn::ImportValue"].as_str() {
                        imported = Some(l.to_string());
                    }
                }
                "AWS::IAM::Role" => c.roles += 1,
                "AWS::EC2::VPC" => c.vpcs += 1,
                "AWS::EC2::EIP" => c.eips += 1,
                "AWS::S3::Bucket" => c.buckets += 1,
                _ => {}
            }
        }
        if let Some(id) = own_lb
            && !f.name.ends_with("-load-balancer.json")
        {
            c.per_lb.push((
                format!("{}/{id}", f.name.trim_end_matches(".json")),
                rules,
                tgs,
                targets,
            ));
        } else if let Some(l) = imported {
            match on_shared.iter_mut().find(|(n, ..)| *n == l) {
                Some(e) => {
                    e.1 += rules;
                    e.2 += tgs;
                    e.3 += targets;
                }
                None => on_shared.push((l, rules, tgs, targets)),
            }
        }
    }
    c.per_lb.extend(on_shared);
    c
}

/// The environments counted (each long-lived one, and one preview standing for
/// `previews.max`), and that number of previews.
fn environments(repo: &Monorepo) -> (Vec<String>, u64) {
    let f = &repo.foundation;
    let mut envs: Vec<String> = f.env_names().iter().map(|s| s.to_string()).collect();
    let previews = if f.previews_enabled {
        repo.resolve_foundation(&format!("{PREVIEW_PREFIX}1"), &Layer::default())
            .get(keys::PREVIEW_MAX)
            .max(0) as u64
    } else {
        0
    };
    if previews > 0 {
        envs.push(format!("{PREVIEW_PREFIX}1"));
    }
    (envs, previews)
}

/// The regions the environments are configured in (where Service Quotas is
/// asked for the regional quotas), in order, once each.
pub fn regions(repo: &Monorepo) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for env in environments(repo).0 {
        if let Some((r, _)) = repo.resolve_foundation(&env, &Layer::default()).region
            && !out.contains(&r)
        {
            out.push(r);
        }
    }
    out
}

/// The report against AWS's default quotas (see `check_with`).
pub fn check(repo: &Monorepo) -> Result<Value, Vec<Diagnostic>> {
    check_with(repo, None, None)
}

/// The report: each quota with what the monorepo needs, its limit (the
/// account's value from `applied`, else the default, saying which and why) and
/// whether it fits, or the diagnostics of an environment that does not
/// synthesize. `region` overrides every environment's (`--region`).
pub fn check_with(
    repo: &Monorepo,
    applied: Option<&Applied>,
    region: Option<&str>,
) -> Result<Value, Vec<Diagnostic>> {
    let (envs, previews) = environments(repo);
    let opts = Options {
        region: region.map(str::to_string),
        ..Options::default()
    };
    // (environment, region, copies, count)
    let mut rows: Vec<(String, String, u64, Count)> = Vec::new();
    let mut shared_regions: Vec<String> = Vec::new();
    let mut preview_foundation_counted = false;
    for env in &envs {
        let o = synth(repo, env, &opts)?;
        let region = o.plan.region.clone();
        let first_in_region = !shared_regions.contains(&region);
        if first_in_region {
            shared_regions.push(region.clone());
        }
        let mut c = count(&o, !first_in_region);
        let mut copies = 1;
        if env.starts_with(PREVIEW_PREFIX) {
            copies = previews;
            // The previews' foundation exists once, whatever their number: count
            // its share as one environment, the rest per preview.
            if !preview_foundation_counted {
                preview_foundation_counted = true;
                let foundation = Output {
                    files: o
                        .files
                        .iter()
                        .filter(|f| f.name.ends_with("-foundation.json"))
                        .cloned()
                        .collect(),
                    plan: o.plan.clone(),
                };
                let fc = count(&foundation, true);
                c.roles -= fc.roles;
                c.vpcs -= fc.vpcs;
                c.eips -= fc.eips;
                c.buckets -= fc.buckets;
                c.stacks -= fc.stacks;
                rows.push((
                    format!("{PREVIEW_PREFIX}* foundation"),
                    region.clone(),
                    1,
                    fc,
                ));
            }
        }
        rows.push((
            if copies > 1 || env.starts_with(PREVIEW_PREFIX) {
                format!("{PREVIEW_PREFIX}* ({copies})")
            } else {
                env.clone()
            },
            region,
            copies,
            c,
        ));
    }
    let mut out = Vec::new();
    let mut exceeded = 0;
    for q in QUOTAS {
        if let Some(capacity) = q.measure.fargate() {
            for region in &shared_regions {
                let v = fargate_quota(q, capacity, region, &rows, applied);
                exceeded += usize::from(v["fits"] == json!(false));
                out.push(v);
            }
            continue;
        }
        if q.scope == "load balancer" {
            // The busiest load balancer of any environment.
            let mut worst: Option<(String, String, u64)> = None;
            for (env, region, _, c) in &rows {
                for (lb, rules, tgs, targets) in &c.per_lb {
                    let n = match q.measure {
                        Measure::RulesPerLoadBalancer => *rules,
                        Measure::TargetsPerLoadBalancer => *targets,
                        _ => *tgs,
                    };
                    if worst.as_ref().is_none_or(|(_, _, w)| n > *w) {
                        worst = Some((format!("{env}: {lb}"), region.clone(), n));
                    }
                }
            }
            let (r#where, region, n) = worst.unwrap_or_default();
            let region = if region.is_empty() {
                shared_regions.first().cloned().unwrap_or_default()
            } else {
                region
            };
            let (max, source, note) = limit(q, &region, applied);
            let fits = n <= max;
            exceeded += usize::from(!fits);
            out.push(json!({
                "quota": q.name, "scope": q.scope, "default": q.default, "limit": max,
                "source": source, "note": note, "code": q.code.map(|c| format!("{}/{c}", q.service)),
                "needed": n, "where": r#where, "fits": fits, "fix": (!fits).then_some(q.fix),
            }));
            continue;
        }
        let mut scopes: Vec<String> = if q.scope == "account" {
            vec!["account".into()]
        } else {
            shared_regions.clone()
        };
        scopes.dedup();
        for scope in scopes {
            let parts: Vec<(String, u64)> = rows
                .iter()
                .filter(|(_, r, _, _)| q.scope == "account" || *r == scope)
                .map(|(env, _, copies, c)| (env.clone(), c.measure(q.measure) * copies))
                .filter(|(_, n)| *n > 0)
                .collect();
            let n: u64 = parts.iter().map(|(_, n)| n).sum();
            let (max, source, note) = limit(q, &scope, applied);
            let fits = n <= max;
            exceeded += usize::from(!fits);
            out.push(json!({
                "quota": q.name,
                "scope": scope,
                "default": q.default,
                "limit": max,
                "source": source,
                "note": note,
                "code": q.code.map(|c| format!("{}/{c}", q.service)),
                "needed": n,
                "by_environment": parts.iter().map(|(e, n)| json!({ "environment": e, "needed": n })).collect::<Vec<_>>(),
                "fits": fits,
                "fix": (!fits).then_some(q.fix),
            }));
        }
    }
    let from_account = out.iter().filter(|q| q["source"] == "account").count();
    Ok(json!({
        "services": repo.services.len(),
        "previews": previews,
        "quotas": out,
        "exceeded": exceeded,
        "from_account": from_account,
        "note": match applied {
            None => "AWS's default quotas; the account's applied quotas are not read (`--target aws` reads them from Service Quotas)".to_string(),
            Some(_) => format!("{from_account} of {} limits are the account's applied quotas (Service Quotas); the others are AWS's defaults, each with the reason", out.len()),
        },
    }))
}

/// Rounds vCPUs for the report (task sizes are multiples of 0.25 vCPU).
fn vcpu_figure(x: f64) -> f64 {
    // `+ 0.0` turns the -0.0 of an empty sum into 0.
    (x * 100.0).round() / 100.0 + 0.0
}

/// A Fargate vCPU quota in `region`: the vCPUs every environment there asks
/// for on `capacity` (previews × `previews.max`), summed (the quota is the
/// account's in the region, shared by every environment in it), at the
/// minimum task counts and at the maximum. It fits when the maximum does; the
/// report says by how much each is over and what to change.
fn fargate_quota(
    q: &Quota,
    capacity: Capacity,
    region: &str,
    rows: &[(String, String, u64, Count)],
    applied: Option<&Applied>,
) -> Value {
    let here = || rows.iter().filter(|(_, r, _, _)| r == region);
    let parts: Vec<(String, f64, f64)> = here()
        .map(|(env, _, copies, c)| {
            let (lo, hi) = c.vcpus(capacity);
            (env.clone(), lo * *copies as f64, hi * *copies as f64)
        })
        .filter(|(_, lo, hi)| *lo > 0.0 || *hi > 0.0)
        .collect();
    let at_min: f64 = parts.iter().map(|p| p.1).sum();
    let at_max: f64 = parts.iter().map(|p| p.2).sum();
    // One environment here deploying every one of its services at once (the
    // one that adds the most), the others running as they are.
    let most = |pick: fn((f64, f64)) -> f64| {
        here()
            .map(|(env, _, _, c)| {
                let who = if env.starts_with(PREVIEW_PREFIX) {
                    format!("a preview, {PREVIEW_PREFIX}<pr>,")
                } else {
                    env.clone()
                };
                (who, pick(c.surge(capacity)))
            })
            .fold(
                (String::new(), 0.0f64),
                |a, b| if b.1 > a.1 { b } else { a },
            )
    };
    let (surge_min_env, surge_min) = most(|p| p.0);
    let (surge_max_env, surge_max) = most(|p| p.1);
    let (limit_value, source, note) = limit(q, region, applied);
    let cap = limit_value as f64;
    let fits = at_max <= cap + 1e-9;
    let fits_at_min = at_min <= cap + 1e-9;
    let code = q.code.unwrap_or_default();
    let provider = match capacity {
        Capacity::OnDemand => "FARGATE",
        Capacity::Spot => "FARGATE_SPOT",
    };
    let fix = (!fits).then(|| {
        let when = if fits_at_min {
            format!(
                "at the minimum task counts the environments in {region} need {} vCPUs on {provider} and fit, but scaling out to the maximum needs {} (over by {}): autoscaling would stop short",
                vcpu_figure(at_min),
                vcpu_figure(at_max),
                vcpu_figure(at_max - cap)
            )
        } else {
            format!(
                "even at the minimum task counts the environments in {region} need {} vCPUs on {provider} (over by {}; {} at the maximum, over by {}): some tasks would never start",
                vcpu_figure(at_min),
                vcpu_figure(at_min - cap),
                vcpu_figure(at_max),
                vcpu_figure(at_max - cap)
            )
        };
        format!(
            "{when}. Request an increase to at least {} (`aws service-quotas request-service-quota-increase --service-code fargate --quota-code {code} --desired-value {} --region {region}`), or: {}",
            at_max.ceil(),
            at_max.ceil(),
            q.fix
        )
    });
    json!({
        "quota": q.name,
        "scope": region,
        "default": q.default,
        "limit": limit_value,
        "source": source,
        "note": note,
        "code": q.code.map(|c| format!("{}/{c}", q.service)),
        "needed": vcpu_figure(at_max),
        "needed_at_min": vcpu_figure(at_min),
        "over_by": (!fits).then(|| vcpu_figure(at_max - cap)),
        "over_by_at_min": (!fits_at_min).then(|| vcpu_figure(at_min - cap)),
        "by_environment": parts.iter().map(|(e, lo, hi)| json!({
            "environment": e, "needed": vcpu_figure(*hi), "needed_at_min": vcpu_figure(*lo),
        })).collect::<Vec<_>>(),
        "fits": fits,
        "fits_at_min": fits_at_min,
        "fix": fix,
        "deploying": {
            "needed": vcpu_figure(at_max + surge_max),
            "needed_at_min": vcpu_figure(at_min + surge_min),
            "environment": (surge_max > 0.0).then_some(surge_max_env),
            "environment_at_min": (surge_min > 0.0).then_some(surge_min_env),
            "over_by": (at_max + surge_max > cap + 1e-9).then(|| vcpu_figure(at_max + surge_max - cap)),
            "over_by_at_min": (at_min + surge_min > cap + 1e-9).then(|| vcpu_figure(at_min + surge_min - cap)),
        },
    })
}
