//! The checks of what services say about each other: grants, references to
//! another service's queues and buckets, calls, secrets taken from another service,
//! import cycles between their stacks and physical names that would collide.

use super::Monorepo;
use pantstack_manifest::Diagnostic;

/// The help for a service name that is not one of `names`.
fn services_help(name: &str, names: &[&str]) -> String {
    match pantstack_manifest::diag::did_you_mean(name, names) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("services: {}", names.join(", ")),
    }
}

/// `name`, where a service of the monorepo is expected, is none of them.
fn unknown_service(
    file: &str,
    span: pantstack_manifest::Span,
    field: &str,
    name: &str,
    names: &[&str],
) -> Diagnostic {
    Diagnostic::error(
        "unknown-service",
        file,
        span,
        field,
        format!("no service `{name}` in this monorepo"),
    )
    .with_help(services_help(name, names))
}

/// Stack imports between services (on AWS a bucket's taker imports its name) must
/// not form a cycle: each stack would need the other deployed first. Reported at
/// the edge that closes it. Calls import nothing between service stacks (their
/// rules are in the environment's Service Connect stack), so they may go both ways.
pub(super) fn check_import_cycles(repo: &Monorepo, diags: &mut Vec<Diagnostic>) {
    // (from, to, file, span, field)
    let mut edges: Vec<(&str, &str, &str, pantstack_manifest::Span, String)> = Vec::new();
    for u in &repo.services {
        let s = &u.service;
        for f in s.foreign.iter().filter(|f| f.kind == "bucket") {
            edges.push((&s.name, &f.owner, &s.manifest_file, f.span, f.field.clone()));
        }
    }
    let mut reported: Vec<Vec<&str>> = Vec::new();
    for (from, to, file, span, field) in &edges {
        // A path from `to` back to `from` closes a cycle through this edge.
        let mut stack: Vec<Vec<&str>> = vec![vec![to]];
        let mut seen: Vec<&str> = Vec::new();
        while let Some(path) = stack.pop() {
            let last = path[path.len() - 1];
            if last == *from {
                let mut cycle: Vec<&str> = vec![from];
                cycle.extend(path.iter().copied());
                let mut key = cycle.clone();
                key.sort();
                key.dedup();
                if !reported.contains(&key) {
                    reported.push(key);
                    diags.push(
                        Diagnostic::error("import-cycle", file, *span, field, format!(
                            "{} form a cycle of bucket grants: on AWS each of these stacks would import the next one's bucket, which imports from it",
                            cycle.join(" → ")
                        ))
                        .with_help("take buckets in one direction only along this cycle (queues, secrets and calls may go both ways)"),
                    );
                }
                break;
            }
            if seen.contains(&last) {
                continue;
            }
            seen.push(last);
            for (f2, t2, ..) in &edges {
                if *f2 == last {
                    let mut p = path.clone();
                    p.push(t2);
                    stack.push(p);
                }
            }
        }
    }
}

/// Physical names built from `{service}-{queue}` and `{service}-{bucket}` must not
/// collide across services (`api` + `x-jobs` and `api-x` + `jobs`): one would get
/// the other's resource.
pub(super) fn check_name_collisions(repo: &Monorepo, diags: &mut Vec<Diagnostic>) {
    for (kind, section) in [("queue", "queues"), ("bucket", "buckets")] {
        let mut seen: Vec<(String, &str)> = Vec::new();
        for u in &repo.services {
            let s = &u.service;
            let names: Vec<&str> = if kind == "queue" {
                s.queues.iter().map(|q| q.name.as_str()).collect()
            } else {
                s.buckets.iter().map(|b| b.name.as_str()).collect()
            };
            for n in names {
                let joined = format!("{}-{n}", s.name);
                if let Some((_, other)) = seen.iter().find(|(j, _)| *j == joined) {
                    diags.push(
                        Diagnostic::error("name-collision", &s.manifest_file, Default::default(), &format!("{section}.{n}"), format!(
                            "{kind} `{n}` of `{}` gets the same name as a {kind} of `{other}` (`…-{joined}`)",
                            s.name
                        ))
                        .with_help("rename one of them"),
                    );
                } else {
                    seen.push((joined, &s.name));
                }
            }
        }
    }
}

/// Grants between services: a grant names a service of the monorepo (not its
/// owner); a reference to another service's queue or bucket (`${queue:api.jobs}`)
/// names a declared one that grants the referring service access; a grant nobody
/// uses is a warning.
pub(super) fn check_grants(repo: &Monorepo, diags: &mut Vec<Diagnostic>) {
    use pantstack_manifest::diag::did_you_mean;
    let names: Vec<&str> = repo
        .services
        .iter()
        .map(|u| u.service.name.as_str())
        .collect();
    for u in &repo.services {
        let svc = &u.service;
        let grants = svc
            .queues
            .iter()
            .map(|q| ("queues", q.name.as_str(), &q.grants))
            .chain(
                svc.buckets
                    .iter()
                    .map(|b| ("buckets", b.name.as_str(), &b.grants)),
            );
        for (section, resource, list) in grants {
            for g in list {
                let field = format!("{section}.{resource}.grants.{}", g.to.value);
                if g.to.value == svc.name {
                    diags.push(
                        Diagnostic::error(
                            "invalid-grant",
                            &svc.manifest_file,
                            g.to.span,
                            &field,
                            format!(
                                "`{}` grants itself: a service always uses its own {section}",
                                svc.name
                            ),
                        )
                        .with_help("remove this grant"),
                    );
                    continue;
                }
                let Some(consumer) = repo.services.iter().find(|c| c.service.name == g.to.value)
                else {
                    diags.push(unknown_service(
                        &svc.manifest_file,
                        g.to.span,
                        &field,
                        &g.to.value,
                        &names,
                    ));
                    continue;
                };
                let kinds: &[&str] = if section == "queues" {
                    &["queue", "dlq"]
                } else {
                    &["bucket"]
                };
                let used = consumer.service.foreign.iter().any(|f| {
                    f.owner == svc.name && f.name == resource && kinds.contains(&f.kind.as_str())
                });
                if !used {
                    diags.push(
                        Diagnostic::warning(
                            "unused-grant",
                            &svc.manifest_file,
                            g.to.span,
                            &field,
                            format!(
                                "`{}` is granted {section}.{resource} but never refers to it",
                                g.to.value
                            ),
                        )
                        .with_help(format!(
                            "in {}, reference it as `${{{}:{}.{resource}}}`, or remove the grant",
                            consumer.service.manifest_file, kinds[0], svc.name
                        )),
                    );
                }
            }
        }
        // Calls: to another service of the monorepo that serves HTTP.
        for (i, c) in svc.calls.iter().enumerate() {
            if svc.calls[..i].iter().any(|p| p.value == c.value) {
                diags.push(
                    Diagnostic::error(
                        "duplicate-name",
                        &svc.manifest_file,
                        c.span,
                        "calls",
                        format!("`{}` is listed twice in `calls`", c.value),
                    )
                    .with_help("list each service once"),
                );
                continue;
            }
            let field = "calls";
            if c.value == svc.name {
                diags.push(
                    Diagnostic::error(
                        "invalid-call",
                        &svc.manifest_file,
                        c.span,
                        field,
                        format!("`{}` calls itself", svc.name),
                    )
                    .with_help("a service reaches itself without Service Connect; remove it"),
                );
                continue;
            }
            let Some(callee) = repo.services.iter().find(|o| o.service.name == c.value) else {
                diags.push(unknown_service(
                    &svc.manifest_file,
                    c.span,
                    field,
                    &c.value,
                    &names,
                ));
                continue;
            };
            if callee.service.http.is_none() {
                diags.push(
                    Diagnostic::error(
                        "invalid-call",
                        &svc.manifest_file,
                        c.span,
                        field,
                        format!(
                            "`{}` serves no HTTP (it declares no `http:`), so it cannot be called",
                            c.value
                        ),
                    )
                    .with_help(format!(
                        "give {} an `http:` section, or send it messages through a granted queue",
                        c.value
                    )),
                );
                continue;
            }
            let var = crate::service::call_variable(&c.value);
            if crate::names::is_reserved_var(&var) {
                diags.push(
                    Diagnostic::error("reserved-name", &svc.manifest_file, c.span, field, format!("calling `{}` would set `{var}`, which pantstack sets for every task (the AWS SDKs read it)", c.value))
                        .with_help(format!("rename the service `{}`", c.value)),
                );
                continue;
            }
            if svc.variables.iter().any(|(k, _)| *k == var)
                || svc
                    .env_variables
                    .iter()
                    .any(|e| e.variables.iter().any(|(k, _)| *k == var))
                || svc.secrets.iter().any(|s| s.name == var)
            {
                diags.push(
                    Diagnostic::error(
                        "duplicate-name",
                        &svc.manifest_file,
                        c.span,
                        field,
                        format!(
                            "`{var}` is set by `calls: [{}]` and declared under `variables:` or `secrets:` too",
                            c.value
                        ),
                    )
                    .with_help(format!(
                        "rename or remove that `{var}` (its value is {}'s address)",
                        c.value
                    )),
                );
            }
        }
        // Secrets: granted by their owner (`grants: { reports: read }`), taken with
        // `from: OWNER`.
        for sec in &svc.secrets {
            // A taken secret's grants are its owner's to give (refused when read).
            let own_grants: &[crate::service::Grant] =
                if sec.from.is_some() { &[] } else { &sec.grants };
            for g in own_grants {
                let field = format!("secrets.{}.grants.{}", sec.name, g.to.value);
                if g.to.value == svc.name {
                    diags.push(
                        Diagnostic::error(
                            "invalid-grant",
                            &svc.manifest_file,
                            g.to.span,
                            &field,
                            format!("`{}` grants itself its own secret", svc.name),
                        )
                        .with_help("remove this grant"),
                    );
                    continue;
                }
                let Some(consumer) = repo.services.iter().find(|c| c.service.name == g.to.value)
                else {
                    diags.push(unknown_service(
                        &svc.manifest_file,
                        g.to.span,
                        &field,
                        &g.to.value,
                        &names,
                    ));
                    continue;
                };
                let used = consumer.service.secrets.iter().any(|c| {
                    c.name == sec.name && c.from.as_ref().is_some_and(|f| f.value == svc.name)
                });
                if !used {
                    diags.push(
                        Diagnostic::warning("unused-grant", &svc.manifest_file, g.to.span, &field, format!("`{}` is granted the secret {} but does not take it", g.to.value, sec.name))
                            .with_help(format!("in {}, declare `secrets: {{ {}: {{ from: {} }} }}`, or remove the grant", consumer.service.manifest_file, sec.name, svc.name)),
                    );
                }
            }
            let Some(from) = &sec.from else {
                continue;
            };
            let field = format!("secrets.{}.from", sec.name);
            if from.value == svc.name {
                diags.push(
                    Diagnostic::error(
                        "invalid-grant",
                        &svc.manifest_file,
                        from.span,
                        &field,
                        format!("`{}` takes its secret `{}` from itself", svc.name, sec.name),
                    )
                    .with_help("remove `from`: a service's secrets are its own"),
                );
                continue;
            }
            let Some(owner) = repo.services.iter().find(|o| o.service.name == from.value) else {
                diags.push(unknown_service(
                    &svc.manifest_file,
                    from.span,
                    &field,
                    &from.value,
                    &names,
                ));
                continue;
            };
            let Some(theirs) = owner
                .service
                .secrets
                .iter()
                .find(|o| o.name == sec.name && o.from.is_none())
            else {
                diags.push(
                    Diagnostic::error(
                        "undeclared-reference",
                        &svc.manifest_file,
                        from.span,
                        &field,
                        format!(
                            "`{}` declares no secret `{}` of its own",
                            from.value, sec.name
                        ),
                    )
                    .with_help(format!(
                        "declare it under `secrets:` in {}",
                        owner.service.manifest_file
                    )),
                );
                continue;
            };
            if !theirs.grants.iter().any(|g| g.to.value == svc.name) {
                diags.push(
                    Diagnostic::error(
                        "not-granted",
                        &svc.manifest_file,
                        from.span,
                        &field,
                        format!(
                            "`{}` does not grant `{}` its secret `{}`",
                            from.value, svc.name, sec.name
                        ),
                    )
                    .with_help(format!(
                        "in {}, add under `secrets.{}`: `grants: {{ {}: read }}`",
                        owner.service.manifest_file, sec.name, svc.name
                    )),
                );
            }
        }
        for f in &svc.foreign {
            let Some(owner) = repo.services.iter().find(|o| o.service.name == f.owner) else {
                let help = services_help(&f.owner, &names);
                diags.push(
                    Diagnostic::error(
                        "undeclared-reference",
                        &svc.manifest_file,
                        f.span,
                        &f.field,
                        format!(
                            "`${{{}:{}.{}}}` names service `{}`, which this monorepo does not have",
                            f.kind, f.owner, f.name, f.owner
                        ),
                    )
                    .with_help(help),
                );
                continue;
            };
            let o = &owner.service;
            let (section, grants, declared): (
                &str,
                Option<&Vec<crate::service::Grant>>,
                Vec<&str>,
            ) = match f.kind.as_str() {
                "bucket" => (
                    "buckets",
                    o.buckets
                        .iter()
                        .find(|b| b.name == f.name)
                        .map(|b| &b.grants),
                    o.buckets.iter().map(|b| b.name.as_str()).collect(),
                ),
                _ => (
                    "queues",
                    o.queues
                        .iter()
                        .find(|q| q.name == f.name && (f.kind != "dlq" || q.dead_letter.is_some()))
                        .map(|q| &q.grants),
                    o.queues.iter().map(|q| q.name.as_str()).collect(),
                ),
            };
            let Some(grants) = grants else {
                let help = match did_you_mean(&f.name, &declared) {
                    Some(s) => format!("did you mean `{}.{s}`?", f.owner),
                    None if declared.is_empty() => format!("`{}` declares no {section}", f.owner),
                    None => format!("{}'s {section}: {}", f.owner, declared.join(", ")),
                };
                diags.push(
                    Diagnostic::error(
                        "undeclared-reference",
                        &svc.manifest_file,
                        f.span,
                        &f.field,
                        format!(
                            "`${{{}:{}.{}}}`: `{}` declares no such {}",
                            f.kind,
                            f.owner,
                            f.name,
                            f.owner,
                            if f.kind == "dlq" {
                                "queue with a dead-letter queue"
                            } else {
                                &section[..section.len() - 1]
                            }
                        ),
                    )
                    .with_help(help),
                );
                continue;
            };
            if !grants.iter().any(|g| g.to.value == svc.name) {
                let level = if section == "buckets" { "read" } else { "send" };
                diags.push(
                    Diagnostic::error(
                        "not-granted",
                        &svc.manifest_file,
                        f.span,
                        &f.field,
                        format!(
                            "`{}` does not grant `{}` its {} `{}`",
                            f.owner,
                            svc.name,
                            &section[..section.len() - 1],
                            f.name
                        ),
                    )
                    .with_help(format!(
                        "in {}, add under `{section}.{}`: `grants: {{ {}: {level} }}` (or {})",
                        o.manifest_file,
                        f.name,
                        svc.name,
                        if section == "buckets" {
                            "write, read-write"
                        } else {
                            "consume, send-consume"
                        }
                    )),
                );
            }
        }
    }
}
