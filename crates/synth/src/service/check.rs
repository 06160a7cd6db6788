//! The checks of a service that only matter for AWS (the model checks the rest):
//! tracing without NAT, blue/green with several listener rules, what a shared load
//! balancer cannot do, bucket replication regions.

use crate::network::{Layout, Nat};
use crate::{Ctx, place};
use pantstack_manifest::Diagnostic;
use pantstack_model::Resolved;
use pantstack_model::repo::ServiceUnit;
use pantstack_model::settings::keys;

/// ALB path-pattern matching: `*` any run of characters, `?` one.
fn glob(pattern: &str, path: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), path.chars().collect());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < s.len() {
        if i < p.len() && (p[i] == '?' || p[i] == s[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(st) = star {
            i = st + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == '*' {
        i += 1;
    }
    i == p.len()
}

/// Checks that only matter for AWS (the model checks the rest).
pub fn check(
    cx: &Ctx<'_>,
    unit: &ServiceUnit,
    cfg: &Resolved,
    layout: &Layout,
    region: &str,
) -> Vec<Diagnostic> {
    let svc = &unit.service;
    let file = &svc.manifest_file;
    let mut out = Vec::new();
    if cfg.get(keys::TRACING) && layout.nat == Nat::None {
        let (f, span) = place(cfg, keys::TRACING, file);
        out.push(
            Diagnostic::error(
                "tracing-needs-nat",
                &f,
                span,
                keys::TRACING.name(),
                format!("service `{}`: tracing runs the ADOT collector from public ECR, which a VPC without NAT gateways cannot reach (environment `{}`)", svc.name, cx.env),
            )
            .with_help("set `pantstack:natGateways: single` for this environment, or turn tracing off"),
        );
    }
    if cfg.get(keys::DEPLOYMENT_STRATEGY) != "rolling"
        && let Some(h) = &svc.http
        && h.rules.len() > 1
    {
        let (f, span) = place(cfg, keys::DEPLOYMENT_STRATEGY, file);
        out.push(
            Diagnostic::error(
                "strategy-one-rule",
                &f,
                span,
                keys::DEPLOYMENT_STRATEGY.name(),
                format!("service `{}` declares {} listener rules; ECS blue/green and canary deployments shift one production listener rule", svc.name, h.rules.len()),
            )
            .with_help("keep one rule under `http.rules` (or none: all traffic), or use `deployment.strategy: rolling`"),
        );
    }
    if cx.shared_lb && svc.http.is_some() {
        if cfg.get(keys::CERTIFICATE_ARN).is_some() && crate::shared_lb::certificate(cx).is_none() {
            let (f, span) = place(cfg, keys::CERTIFICATE_ARN, file);
            out.push(
                Diagnostic::error(
                    "shared-lb-certificate",
                    &f,
                    span,
                    keys::CERTIFICATE_ARN.name(),
                    format!("service `{}` sets a certificate, but environment `{}` shares load balancers (`network.load_balancer: shared`) that have no HTTPS listener: the environment sets no certificate", svc.name, cx.env),
                )
                .with_help("set the environment's certificate (`network.load_balancer_certificate`, or `pantstack:loadBalancerCertificateArn` in its stack file); this one is then added to its HTTPS listener for its host names"),
            );
        }
        if cfg.get(keys::DEPLOYMENT_STRATEGY) != "rolling"
            && cfg.get(keys::REQUESTS_PER_TARGET).is_some()
        {
            let (f, span) = place(cfg, keys::REQUESTS_PER_TARGET, file);
            out.push(
                Diagnostic::error(
                    "shared-lb-request-scaling",
                    &f,
                    span,
                    keys::REQUESTS_PER_TARGET.name(),
                    format!("service `{}`: scaling on requests per target with blue/green on a shared load balancer would count every service's requests", svc.name),
                )
                .with_help("scale on CPU or memory, use `deployment.strategy: rolling`, or `network.load_balancer: per_service`"),
            );
        }
        let t = cfg.get(keys::IDLE_TIMEOUT);
        if t != 60 {
            let (f, span) = place(cfg, keys::IDLE_TIMEOUT, file);
            out.push(Diagnostic::warning(
                "shared-lb-idle-timeout",
                &f,
                span,
                keys::IDLE_TIMEOUT.name(),
                format!("service `{}`: `idle_timeout` {t}s is not applied: environment `{}` shares load balancers, whose idle timeout is 60 s", svc.name, cx.env),
            ));
        }
        // A rule that would catch another service's default path (`/*`, `/re*`)
        // takes its traffic whichever priority block is lower: refused.
        for rule in svc
            .http
            .as_ref()
            .map(|h| h.rules.as_slice())
            .unwrap_or_default()
        {
            let (Some(p), None) = (&rule.path, &rule.host) else {
                continue;
            };
            let catches = cx.repo.services.iter().find(|o| {
                let o = &o.service;
                o.name != svc.name
                    && o.http.as_ref().is_some_and(|h| h.rules.is_empty())
                    && glob(p, &format!("/{}/x", o.name))
            });
            if let Some(o) = catches {
                out.push(
                    Diagnostic::error(
                        "shared-lb-rule-overlap",
                        file,
                        crate::span_of(cx.repo, file, &["http", "rules"]),
                        "http.rules",
                        format!("service `{}`: its rule path `{p}` also matches `/{}/…`, service `{}`'s path on the shared load balancer", svc.name, o.service.name, o.service.name),
                    )
                    .with_help("narrow the path (`/{name}/*`), add a `host:` to the rule, or use `network.load_balancer: per_service`"),
                );
            }
        }
        let rules = svc.http.as_ref().map(|h| h.rules.len()).unwrap_or(0);
        if rules > crate::shared_lb::RULES_PER_SERVICE {
            out.push(Diagnostic::error(
                "shared-lb-rules",
                file,
                crate::span_of(cx.repo, file, &["http", "rules"]),
                "http.rules",
                format!("service `{}` declares {rules} listener rules; on a shared load balancer a service has {} at most", svc.name, crate::shared_lb::RULES_PER_SERVICE),
            ));
        }
    }
    let mut regions: Vec<&str> = Vec::new();
    for b in &svc.buckets {
        if let Some(rr) = &b.replication_region {
            if rr == region {
                out.push(
                    Diagnostic::error(
                        "replication-same-region",
                        file,
                        crate::span_of(cx.repo, file, &["buckets", &b.name, "replication", "region"]),
                        &format!("buckets.{}.replication", b.name),
                        format!("bucket `{}` replicates to {rr}, the region environment `{}` runs in; a disaster-recovery copy belongs in another region", b.name, cx.env),
                    )
                    .with_help("name another region"),
                );
            }
            if !regions.contains(&rr.as_str()) {
                regions.push(rr);
            }
        }
    }
    if regions.len() > 1 {
        out.push(Diagnostic::error(
            "replication-regions",
            file,
            crate::span_of(cx.repo, file, &["buckets"]),
            "buckets",
            format!(
                "service `{}` replicates buckets to several regions ({}); one replica region per service is supported",
                svc.name,
                regions.join(", ")
            ),
        ));
    }
    out
}
