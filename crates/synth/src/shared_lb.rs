//! The environment's shared load balancer, `{project}-{env}-load-balancer`, when
//! the foundation says `network.load_balancer: shared` (Copilot's environment
//! model): one internet-facing ALB and its HTTP listener, whose default answer is
//! 404; each HTTP service stack adds its target group and listener rules to it.
//!
//! Why: one ALB per HTTP service per environment reaches the default quota of 50
//! load balancers a region at 25 services with two environments. Shared, an
//! environment has one (each preview one of its own: this stack is per
//! environment, deployed by CI before the services, not by bootstrap).
//!
//! Rule priorities are stable: each service owns a block of 100 priorities
//! (`slot × 100 + 1 ..`), its slot chosen from a hash of its name, probing past
//! the slots of services that sort before it; adding or removing another service
//! moves no other service's rules unless their hashes collide.

use crate::Ctx;
use crate::cfn::{Template, att, import, r, split, tags};
use crate::names::short_hash;
use crate::skips;
use serde_json::{Value, json};

/// Priority blocks: 50,000 priorities an ALB listener allows, 100 per service.
pub const SLOTS: u32 = 500;
/// Rules a service may have on a shared listener.
pub const RULES_PER_SERVICE: usize = 99;

/// The slot of every HTTP service (sorted by name): stable across additions.
pub fn slots(services: &[&str]) -> Vec<(String, u32)> {
    let mut names: Vec<&str> = services.to_vec();
    names.sort_unstable();
    let mut taken: Vec<(String, u32)> = Vec::new();
    for name in names {
        let mut slot = u32::from_str_radix(&short_hash(name), 16).unwrap_or(0) % SLOTS;
        while taken.iter().any(|(_, s)| *s == slot) {
            slot = (slot + 1) % SLOTS;
        }
        taken.push((name.to_string(), slot));
    }
    taken
}

/// The first listener-rule priority of a service's block.
pub fn first_priority(cx: &Ctx<'_>, service: &str) -> u32 {
    cx.lb_slots
        .iter()
        .find(|(n, _)| n == service)
        .map(|(_, s)| s * 100 + 1)
        .unwrap_or(1)
}

/// The load balancer's full name, for metric dimensions: its own, or the shared
/// one's export.
pub fn full_name(cx: &Ctx<'_>) -> Value {
    if cx.shared_lb {
        import(&cx.names.lb_export("FullName"))
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
    t.resource(
        "SecurityGroup",
        "AWS::EC2::SecurityGroup",
        json!({
            "GroupDescription": format!("{prefix} shared load balancer: HTTP from the internet, to the tasks in the VPC"),
            "VpcId": import(&n.export("VpcId")),
            "SecurityGroupIngress": [{
                "Description": "HTTP from the internet",
                "IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIp": "0.0.0.0/0",
            }],
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
    let mut attrs = vec![
        json!({ "Key": "idle_timeout.timeout_seconds", "Value": "60" }),
        json!({ "Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true" }),
        json!({ "Key": "routing.http.desync_mitigation_mode", "Value": "defensive" }),
        json!({ "Key": "access_logs.s3.enabled", "Value": "true" }),
        json!({ "Key": "access_logs.s3.bucket", "Value": import(&n.export("AccessLogBucket")) }),
        json!({ "Key": "access_logs.s3.prefix", "Value": format!("alb/{}", cx.env) }),
        json!({ "Key": "deletion_protection.enabled", "Value": (!cx.is_preview()).to_string() }),
    ];
    attrs.sort_by(|a, b| a["Key"].as_str().cmp(&b["Key"].as_str()));
    let lb = t.resource(
        "LoadBalancer",
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        json!({
            "Name": crate::names::fit(&format!("{prefix}-shared"), 32),
            "Type": "application",
            "Scheme": "internet-facing",
            "IpAddressType": "ipv4",
            "Subnets": split(",", import(&n.export("PublicSubnetIds"))),
            "SecurityGroups": [r("SecurityGroup")],
            "LoadBalancerAttributes": attrs,
            "Tags": tg,
        }),
    );
    if cx.is_preview() {
        lb.skip(&[skips::ALB_PREVIEW_DELETION]);
    }
    t.resource(
        "HttpListener",
        "AWS::ElasticLoadBalancingV2::Listener",
        json!({
            "LoadBalancerArn": r("LoadBalancer"),
            "Port": 80,
            "Protocol": "HTTP",
            "DefaultActions": [{ "Type": "fixed-response", "FixedResponseConfig": {
                "StatusCode": "404", "ContentType": "text/plain", "MessageBody": "no route",
            } }],
        }),
    )
    .skip(&[skips::ALB_HTTP_LISTENER, skips::ALB_HTTP_LISTENER_TLS]);
    t.output(
        "ListenerArn",
        r("HttpListener"),
        Some(&n.lb_export("ListenerArn")),
    );
    t.output(
        "SecurityGroupId",
        r("SecurityGroup"),
        Some(&n.lb_export("SecurityGroupId")),
    );
    t.output(
        "FullName",
        att("LoadBalancer", "LoadBalancerFullName"),
        Some(&n.lb_export("FullName")),
    );
    t.output(
        "DnsName",
        att("LoadBalancer", "DNSName"),
        Some(&n.lb_export("DnsName")),
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
        let all = slots(&refs);
        let mut seen: Vec<u32> = all.iter().map(|(_, s)| *s).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 200);
        // Removing one service moves at most the services that probed past it.
        let fewer = slots(&refs[1..]);
        let moved = fewer
            .iter()
            .filter(|(n, s)| all.iter().any(|(m, t)| m == n && t != s))
            .count();
        assert!(moved <= 3, "{moved} services moved");
    }
}
