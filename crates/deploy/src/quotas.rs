//! The account's applied quotas, from Service Quotas (`GetServiceQuota`), for
//! `pantstack quotas --target aws`: each quota of `pantstack_synth::quotas::QUOTAS`
//! that has a code, in each region the environments use (account-wide ones
//! once, in the first region).
//!
//! Invariants: never fails. A quota Service Quotas does not answer (no such
//! code, access denied, endpoint unreachable) keeps its default, and the reason
//! is recorded with it; after a transport failure (no answer at all) the rest
//! of that region is not asked.

use crate::Clients;
use pantstack_synth::quotas::{Applied, QUOTAS};

/// Asks Service Quotas, in each of `regions`, for the applied value of every
/// quota pantstack counts.
pub async fn applied(clients: &Clients, regions: &[String]) -> Applied {
    let mut out = Applied::default();
    for (i, region) in regions.iter().enumerate() {
        let c = if *region == clients.region {
            clients.clone()
        } else {
            clients.in_region(region)
        };
        let sq = aws_sdk_servicequotas::Client::new(&c.config);
        let mut unreachable: Option<String> = None;
        for q in QUOTAS {
            let Some(code) = q.code else { continue };
            let scope = if q.scope == "account" {
                if i > 0 {
                    continue;
                }
                "account".to_string()
            } else {
                region.clone()
            };
            if let Some(why) = &unreachable {
                note(&mut out, &scope, code, why.clone());
                continue;
            }
            match sq
                .get_service_quota()
                .service_code(q.service)
                .quota_code(code)
                .send()
                .await
            {
                Ok(r) => match r.quota().and_then(|x| x.value()) {
                    Some(v) if v.is_finite() && v >= 0.0 => {
                        out.values.push((scope, code.to_string(), v.round() as u64));
                    }
                    _ => note(
                        &mut out,
                        &scope,
                        code,
                        format!("Service Quotas answered no value for {}/{code}", q.service),
                    ),
                },
                Err(e) => {
                    let why = crate::why(&e);
                    if e.as_service_error().is_none() {
                        // No answer at all: the same for every other quota here.
                        let why = format!("Service Quotas unreachable in {region}: {why}");
                        note(&mut out, &scope, code, why.clone());
                        unreachable = Some(why);
                    } else {
                        note(
                            &mut out,
                            &scope,
                            code,
                            format!("{}/{code}: {why}", q.service),
                        );
                    }
                }
            }
        }
    }
    out
}

/// Records why quota `code` in `scope` keeps its default.
fn note(out: &mut Applied, scope: &str, code: &str, why: String) {
    out.unanswered
        .push((scope.to_string(), code.to_string(), why));
}
