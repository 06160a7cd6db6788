//! The environment's shared load balancer, `{project}-{env}-load-balancer`, when
//! the foundation says `network.load_balancer: shared` (Copilot's environment
//! model): one internet-facing ALB and its HTTP listener, whose default answer is
//! 404; each HTTP service stack adds its target group and listener rules to it.
//! With the environment's certificate (`network.load_balancer_certificate`) the
//! rules are on an HTTPS:443 listener instead and port 80 redirects to it; its
//! export has a name of its own (`HttpsListenerArn{k}`), so turning HTTPS on
//! changes no export a service imports.
//!
//! Why: one ALB per HTTP service per environment reaches the default quota of 50
//! load balancers a region at 25 services with two environments. Shared, an
//! environment has one (each preview one of its own: this stack is per
//! environment, deployed by CI before the services, not by bootstrap).
//!
//! An ALB takes 100 listener rules, 100 target groups and 1,000 targets by
//! default, so the stack holds as many load balancers as the environment's HTTP
//! services need (`shards`: 200 services → 3 for rules and target groups, 4 when
//! each may run 10 tasks, doubled during a rolling deployment), each service on
//! one of them.
//!
//! Rule priorities: each service owns a block of 100 priorities (`slot × 100 + 1
//! ..`, its `ListenerRule{i}` at `+ i - 1`, so a service's rules changing count
//! stay in its block and keep their priorities). Offline, a service's slot comes
//! from a hash of its name, probing past the slots of services that sort before
//! it. Deploying (`Options::deployed_priorities`, read from the templates
//! CloudFormation holds), every service already deployed keeps the block its
//! rules use, and a new service probes past every block a deployed rule uses:
//! adding or removing a service never moves another deployed service's rules,
//! whose priority CloudFormation would refuse to give a new rule while the old
//! one still holds it.

use crate::Ctx;
use crate::cfn::{Template, att, import, r, split, tags};
use crate::service::TLS_POLICY;
use crate::skips;
use pantstack_model::physical::{Names, short_hash};
use pantstack_model::settings::keys;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Priority blocks: 50,000 priorities an ALB listener allows, 100 per service.
pub const SLOTS: u32 = 500;
/// Rules a service may have on a shared listener.
pub const RULES_PER_SERVICE: usize = 99;

/// The slot of every HTTP service (sorted by name). `deployed`: the listener-rule
/// priorities each deployed stack's rules hold on the shared listeners, by the
/// service the stack is of (a service no longer in the monorepo too: its stack
/// still holds them). A deployed service keeps the block of its lowest priority
/// (the first in name order when two claim one); every other service takes the
/// block its name hashes to, or the next one that no deployed rule and no
/// service before it uses.
pub fn slots(services: &[&str], deployed: &BTreeMap<String, Vec<u32>>) -> Vec<(String, u32)> {
    let mut names: Vec<&str> = services.to_vec();
    names.sort_unstable();
    let held: BTreeSet<u32> = deployed.values().flatten().map(|p| block_of(*p)).collect();
    let mut pinned: BTreeMap<&str, u32> = BTreeMap::new();
    for name in &names {
        let own = deployed.get(*name).and_then(|ps| ps.iter().min());
        if let Some(p) = own
            && !pinned.values().any(|s| *s == block_of(*p))
        {
            pinned.insert(name, block_of(*p));
        }
    }
    let mut taken: BTreeSet<u32> = held;
    let mut out: Vec<(String, u32)> = Vec::new();
    for name in names {
        if let Some(s) = pinned.get(name) {
            out.push((name.to_string(), *s));
            continue;
        }
        let mut slot = u32::from_str_radix(&short_hash(name), 16).unwrap_or(0) % SLOTS;
        let mut probes = 0;
        while taken.contains(&slot) && probes < SLOTS {
            slot = (slot + 1) % SLOTS;
            probes += 1;
        }
        // More services than blocks: `synth` refuses the monorepo (`check`).
        taken.insert(slot);
        out.push((name.to_string(), slot));
    }
    out
}

/// The block a listener-rule priority is in.
pub fn block_of(priority: u32) -> u32 {
    priority.saturating_sub(1) / 100
}

/// The priorities of a deployed template's listener rules on the environment's
/// shared listeners (those whose listener is imported from `{prefix}-lb-`): what
/// the aws target passes back as `Options::deployed_priorities`. Empty for a
/// template with none (or not JSON).
pub fn rule_priorities(template: &str, names: &Names<'_>) -> Vec<u32> {
    let Ok(t) = serde_json::from_str::<Value>(template) else {
        return Vec::new();
    };
    let shared = names.lb_export("");
    let mut out: Vec<u32> = t["Resources"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, r)| r["Type"] == "AWS::ElasticLoadBalancingV2::ListenerRule")
        .filter(|(_, r)| {
            r["Properties"]["ListenerArn"]["Fn::ImportValue"]
                .as_str()
                .is_some_and(|l| l.starts_with(&shared))
        })
        .filter_map(|(_, r)| {
            let p = &r["Properties"]["Priority"];
            p.as_u64()
                .or_else(|| p.as_str().and_then(|s| s.parse().ok()))
                .and_then(|p| u32::try_from(p).ok())
        })
        .collect();
    out.sort_unstable();
    out
}

/// Rules and target groups one ALB takes by default (both quotas are 100; the
/// default rule is not counted).
pub const PER_LOAD_BALANCER: u32 = 100;

/// Targets one ALB takes by default (registered IP targets, every target group).
pub const TARGETS_PER_LOAD_BALANCER: u32 = 1000;

/// What one HTTP service takes of a shared load balancer.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Load {
    /// max(target groups, listener rules): each counts against a quota of 100.
    pub units: u32,
    /// Its most targets at once: most tasks, more while a deployment runs old
    /// and new side by side.
    pub targets: u32,
}

/// Which of `count` load balancers each HTTP service uses. A service goes to the
/// one its name hashes to (jump consistent hashing: raising `count` moves as few
/// services as can be), or the next with room under `PER_LOAD_BALANCER` units and
/// `TARGETS_PER_LOAD_BALANCER` targets. `Err(n)`: they need `n` load balancers
/// (every service must fit one alone: `synth` checks that first).
pub fn shards(units: &[(String, Load)], count: usize) -> Result<Vec<(String, usize)>, usize> {
    let count = count.max(1);
    let mut sorted: Vec<&(String, Load)> = units.iter().collect();
    sorted.sort();
    let assign = |count: usize| -> Option<Vec<(String, usize)>> {
        let mut load = vec![(0u32, 0u32); count];
        let mut out = Vec::new();
        for (name, l) in &sorted {
            let key = u64::from_str_radix(&short_hash(name), 16).unwrap_or(0);
            let start = jump(key, count);
            let i = (0..count).map(|k| (start + k) % count).find(|i| {
                load[*i].0 + l.units <= PER_LOAD_BALANCER
                    && load[*i].1 + l.targets <= TARGETS_PER_LOAD_BALANCER
            })?;
            load[i].0 += l.units;
            load[i].1 += l.targets;
            out.push((name.clone(), i));
        }
        Some(out)
    };
    if let Some(out) = assign(count) {
        return Ok(out);
    }
    let total: u32 = units.iter().map(|(_, l)| l.units).sum();
    let targets: u32 = units.iter().map(|(_, l)| l.targets).sum();
    let mut need = (total.div_ceil(PER_LOAD_BALANCER) as usize)
        .max(targets.div_ceil(TARGETS_PER_LOAD_BALANCER) as usize)
        .max(count + 1);
    // One service per load balancer always fits when each fits one alone.
    while need < units.len() && assign(need).is_none() {
        need += 1;
    }
    Err(need)
}

/// Jump consistent hash (Lamping and Veach): a bucket in `0..n` for `key`; going
/// from n to n+1 buckets moves 1/(n+1) of the keys.
fn jump(mut key: u64, n: usize) -> usize {
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < n as i64 {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b.max(0) as usize
}

/// The shared load balancer a service's rules are on.
pub fn shard_of(cx: &Ctx<'_>, service: &str) -> usize {
    cx.lb_shards
        .iter()
        .find(|(n, _)| n == service)
        .map(|(_, i)| *i)
        .unwrap_or(0)
}

/// The first listener-rule priority of a service's block.
pub fn first_priority(cx: &Ctx<'_>, service: &str) -> u32 {
    cx.lb_slots
        .iter()
        .find(|(n, _)| n == service)
        .map(|(_, s)| s * 100 + 1)
        .unwrap_or(1)
}

/// The environment's certificate for its shared load balancers
/// (`network.load_balancer_certificate`): with one, each has an HTTPS:443
/// listener that the services' rules are on, and port 80 redirects to it.
pub fn certificate<'c>(cx: &'c Ctx<'_>) -> Option<&'c str> {
    cx.foundation.get(keys::LOAD_BALANCER_CERTIFICATE_ARN)
}

/// The export (of `Names::lb_export`) of the listener that load balancer `k`'s
/// rules go on: the HTTPS one with a certificate. Two names, so that turning
/// HTTPS on adds an export rather than changing one that services import
/// (CloudFormation refuses that).
pub fn listener_export(cx: &Ctx<'_>, k: usize) -> String {
    if certificate(cx).is_some() {
        format!("HttpsListenerArn{k}")
    } else {
        format!("ListenerArn{k}")
    }
}

/// The load balancer's full name, for metric dimensions: its own, or the shared
/// one's export.
pub fn full_name(cx: &Ctx<'_>, service: &str) -> Value {
    if cx.shared_lb {
        import(
            &cx.names
                .lb_export(&format!("FullName{}", shard_of(cx, service))),
        )
    } else {
        att("LoadBalancer", "LoadBalancerFullName")
    }
}

pub fn template(cx: &Ctx<'_>) -> Template {
    let n = &cx.names;
    let prefix = n.prefix();
    let mut t = Template::new(format!(
        "Pantstack {}/{}: the load balancer every HTTP service of the environment shares",
        cx.project(),
        cx.env
    ));
    let tg = tags(cx.project(), cx.env, None, None);
    let cert = certificate(cx);
    let mut ingress = vec![json!({
        "Description": if cert.is_some() { "HTTP from the internet (redirected to HTTPS)" } else { "HTTP from the internet" },
        "IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIp": "0.0.0.0/0",
    })];
    if cert.is_some() {
        ingress.push(json!({
            "Description": "HTTPS from the internet",
            "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0",
        }));
    }
    t.resource(
        "SecurityGroup",
        "AWS::EC2::SecurityGroup",
        json!({
            // Fixed whatever the certificate: a new description replaces the group,
            // whose export the services import.
            "GroupDescription": format!("{prefix} shared load balancer: HTTP from the internet, to the tasks in the VPC"),
            "VpcId": import(&n.export("VpcId")),
            "SecurityGroupIngress": ingress,
            // The services' container ports differ; each task group admits this
            // group on its own port only.
            "SecurityGroupEgress": [{
                "Description": "To tasks in the VPC (each task group admits its own container port)",
                "IpProtocol": "tcp", "FromPort": 1, "ToPort": 65535,
                "CidrIp": import(&n.export("VpcCidr")),
            }],
            "Tags": tg.clone(),
        }),
    )
    .skip(&[skips::ALB_PORT_80_OPEN]);
    for k in 0..cx.lb_count.max(1) {
        let mut attrs = vec![
            json!({ "Key": "idle_timeout.timeout_seconds", "Value": "60" }),
            json!({ "Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true" }),
            json!({ "Key": "routing.http.desync_mitigation_mode", "Value": "defensive" }),
            json!({ "Key": "access_logs.s3.enabled", "Value": "true" }),
            json!({ "Key": "access_logs.s3.bucket", "Value": import(&n.export("AccessLogBucket")) }),
            json!({ "Key": "access_logs.s3.prefix", "Value": format!("alb/{}/{k}", cx.env) }),
            json!({ "Key": "deletion_protection.enabled", "Value": (!cx.is_preview()).to_string() }),
        ];
        attrs.sort_by(|a, b| a["Key"].as_str().cmp(&b["Key"].as_str()));
        let lb_id = format!("LoadBalancer{k}");
        let listener_id = format!("HttpListener{k}");
        let lb = t.resource(
            &lb_id,
            "AWS::ElasticLoadBalancingV2::LoadBalancer",
            json!({
                "Name": pantstack_model::physical::fit(&format!("{prefix}-shared-{k}"), 32),
                "Type": "application",
                "Scheme": "internet-facing",
                "IpAddressType": "ipv4",
                "Subnets": split(",", import(&n.export("PublicSubnetIds"))),
                "SecurityGroups": [r("SecurityGroup")],
                "LoadBalancerAttributes": attrs,
                "Tags": tg.clone(),
            }),
        );
        if cx.is_preview() {
            lb.skip(&[skips::ALB_PREVIEW_DELETION]);
        }
        let not_found = json!([{ "Type": "fixed-response", "FixedResponseConfig": {
            "StatusCode": "404", "ContentType": "text/plain", "MessageBody": "no route",
        } }]);
        if let Some(arn) = cert {
            let https_id = format!("HttpsListener{k}");
            t.resource(
                &https_id,
                "AWS::ElasticLoadBalancingV2::Listener",
                json!({
                    "LoadBalancerArn": r(&lb_id),
                    "Port": 443,
                    "Protocol": "HTTPS",
                    "SslPolicy": TLS_POLICY,
                    "Certificates": [{ "CertificateArn": arn }],
                    "DefaultActions": not_found,
                }),
            );
            t.resource(
                &listener_id,
                "AWS::ElasticLoadBalancingV2::Listener",
                json!({
                    "LoadBalancerArn": r(&lb_id),
                    "Port": 80,
                    "Protocol": "HTTP",
                    "DefaultActions": [{ "Type": "redirect", "RedirectConfig": {
                        "Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301",
                        "Host": "#{host}", "Path": "/#{path}", "Query": "#{query}",
                    } }],
                }),
            );
            t.output(
                &format!("HttpsListenerArn{k}"),
                r(&https_id),
                Some(&n.lb_export(&format!("HttpsListenerArn{k}"))),
            );
        } else {
            t.resource(
                &listener_id,
                "AWS::ElasticLoadBalancingV2::Listener",
                json!({
                    "LoadBalancerArn": r(&lb_id),
                    "Port": 80,
                    "Protocol": "HTTP",
                    "DefaultActions": not_found,
                }),
            )
            .skip(&[skips::ALB_HTTP_LISTENER, skips::ALB_HTTP_LISTENER_TLS]);
        }
        t.output(
            &format!("ListenerArn{k}"),
            r(&listener_id),
            Some(&n.lb_export(&format!("ListenerArn{k}"))),
        );
        t.output(
            &format!("FullName{k}"),
            att(&lb_id, "LoadBalancerFullName"),
            Some(&n.lb_export(&format!("FullName{k}"))),
        );
        t.output(
            &format!("DnsName{k}"),
            att(&lb_id, "DNSName"),
            Some(&n.lb_export(&format!("DnsName{k}"))),
        );
    }
    t.output(
        "SecurityGroupId",
        r("SecurityGroup"),
        Some(&n.lb_export("SecurityGroupId")),
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_unique_and_stable_when_services_come_and_go() {
        let names: Vec<String> = (0..200).map(|i| format!("svc{i:03}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let none = BTreeMap::new();
        let all = slots(&refs, &none);
        let mut seen: Vec<u32> = all.iter().map(|(_, s)| *s).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 200);
        // Removing one service moves at most the services that probed past it.
        let fewer = slots(&refs[1..], &none);
        let moved = fewer
            .iter()
            .filter(|(n, s)| all.iter().any(|(m, t)| m == n && t != s))
            .count();
        assert!(moved <= 3, "{moved} services moved");
    }

    fn load(units: u32, targets: u32) -> Load {
        Load { units, targets }
    }

    #[test]
    fn load_balancers_stay_within_their_per_alb_quotas() {
        let units: Vec<(String, Load)> = (0..200)
            .map(|i| {
                (
                    format!("svc{i:03}"),
                    load(if i % 10 == 0 { 2 } else { 1 }, 4),
                )
            })
            .collect();
        assert_eq!(shards(&units, 2), Err(3));
        let count = 3;
        let of = shards(&units, count).expect("fits in 3");
        for k in 0..count {
            let load: u32 = of
                .iter()
                .filter(|(_, i)| *i == k)
                .map(|(n, _)| {
                    units
                        .iter()
                        .find(|(m, _)| m == n)
                        .map(|(_, l)| l.units)
                        .unwrap_or(0)
                })
                .sum();
            assert!(load <= PER_LOAD_BALANCER, "{k}: {load}");
        }
        assert_eq!(
            shards(&[("a".into(), load(1, 1))], 1).map(|v| v.len()),
            Ok(1)
        );
        assert_eq!(shards(&[], 1), Ok(vec![]));
        // Raising the count moves few services.
        let five = shards(&units, 5).expect("5");
        let six = shards(&units, 6).expect("6");
        let moved = five
            .iter()
            .filter(|(n, i)| six.iter().any(|(m, j)| m == n && j != i))
            .count();
        assert!(
            moved < 60,
            "{moved} of 200 moved from 5 to 6 load balancers"
        );
    }

    /// 200 services of at most 10 tasks, doubled during a rolling deployment:
    /// 4,000 targets need 4 load balancers of 1,000 (rules alone would take 3),
    /// and none is ever assigned more than 1,000.
    #[test]
    fn targets_count_against_each_load_balancer() {
        let units: Vec<(String, Load)> = (0..200)
            .map(|i| (format!("svc{i:03}"), load(1, 20)))
            .collect();
        let need = shards(&units, 3).expect_err("3 hold the rules, not the targets");
        assert!(need >= 4, "{need}");
        let of = shards(&units, need).expect("fits");
        for k in 0..need {
            let targets = of.iter().filter(|(_, i)| *i == k).count() as u32 * 20;
            assert!(targets <= TARGETS_PER_LOAD_BALANCER, "{k}: {targets}");
        }
        // A service too large for any one load balancer still gets an answer.
        let huge = vec![("big".to_string(), load(1, 1200)), ("b".into(), load(1, 1))];
        assert_eq!(shards(&huge, 1), Err(2));
    }
}
