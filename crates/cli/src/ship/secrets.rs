//! `pantstack secrets … --target aws`: SecureStrings under a service's path with
//! the environment's KMS key, and the values previews copy theirs from.

use super::*;

pub fn secrets(global: &Global, out: &Out, a: &SecretsArgs) -> Result<(), Failure> {
    // `--env preview`: the values every preview copies its secrets from
    // (`/{project}/preview/{service}/{NAME}`, under the previews' key).
    let shared_preview = a.env.as_deref() == Some(pantstack_model::foundation::PREVIEW_STACK);
    let mut p = if shared_preview {
        prepare(global, out, None, Some(1), a.region.as_deref())?
    } else {
        prepare(global, out, a.env.as_deref(), None, a.region.as_deref())?
    };
    if shared_preview {
        let project = p.output.plan.project.clone();
        for s in &mut p.output.plan.secrets {
            s.path = pantstack_deploy::preview::declared_value_path(&project, s);
        }
        p.env = pantstack_model::foundation::PREVIEW_STACK.to_string();
    }
    let destructive = matches!(
        a.action,
        SecretsAction::Set(_) | SecretsAction::Rm(_) | SecretsAction::Rotate(_)
    );
    if destructive && a.env.is_none() && crate::aws::is_production(&p.env) {
        return Err(Failure::Usage(format!(
            "this would change the secrets of `{}`, chosen from the branch; a command that changes production secrets needs --env {}",
            p.env, p.env
        )));
    }
    let declared = |n: &SecretName| -> Result<pantstack_synth::plan::SecretParameter, Failure> {
        p.repo
            .service(&n.service)
            .ok_or_else(|| crate::aws::unknown_secret_service(&p.repo))?;
        p.output
            .plan
            .secrets
            .iter()
            .find(|s| s.service == n.service && s.variable == n.name)
            .cloned()
            .ok_or_else(|| {
                Failure::Resolve(format!(
                    "`{}` declares no secret {} of its own; declare it under `secrets:` in its manifest",
                    n.service,
                    crate::aws::shown_secret_name(&n.name)
                ))
            })
    };
    let rt = runtime()?;
    match &a.action {
        SecretsAction::Set(n) | SecretsAction::Rotate(n) => {
            let s = declared(n)?;
            let clients = connect(&rt, &p, a.profile.as_deref());
            if matches!(a.action, SecretsAction::Rotate(_)) {
                let have = rt
                    .block_on(pantstack_deploy::secrets::describe(&clients, std::slice::from_ref(&s.path)))
                    .map_err(aws_failure)?;
                if have.is_empty() {
                    return Err(Failure::Resolve(format!(
                        "{}/{} is not set yet in `{}`; set it first with `pantstack secrets set {} {} --target aws --env {}`",
                        n.service, n.name, p.env, n.service, n.name, p.env
                    )));
                }
            }
            let value = crate::aws::read_value(&format!("{}/{}", n.service, n.name))?;
            let v = rt
                .block_on(pantstack_deploy::secrets::set(
                    &clients,
                    &s.path,
                    &value,
                    &s.kms_key_alias,
                    s.rotation_days,
                    s.description.as_deref(),
                ))
                .map_err(|m| {
                    if m.contains("InvalidKeyId") || m.contains("NotFoundException") {
                        aws_failure(format!(
                            "{m} (the environment's KMS key alias/{}/… is missing: has `pantstack bootstrap --env {}` run in {}?)",
                            p.output.plan.project, p.env, clients.region
                        ))
                    } else {
                        aws_failure(m)
                    }
                })?;
            if out.json() {
                println!("{}", json!({ "parameter": s.path, "version": v }));
            } else {
                println!("set {} (version {v}) in {}", s.path, clients.region);
            }
            Ok(())
        }
        SecretsAction::Rm(n) => {
            let s = declared(n)?;
            let clients = connect(&rt, &p, a.profile.as_deref());
            let gone = rt
                .block_on(pantstack_deploy::secrets::remove(&clients, &s.path))
                .map_err(aws_failure)?;
            if !gone {
                return Err(Failure::Resolve(format!("{} is not set", s.path)));
            }
            if out.json() {
                println!("{}", json!({ "parameter": s.path, "deleted": true }));
            } else {
                println!("deleted {}", s.path);
            }
            Ok(())
        }
        SecretsAction::List { service } => {
            let wanted: Vec<_> = p
                .output
                .plan
                .secrets
                .iter()
                .filter(|s| service.as_ref().is_none_or(|x| &s.service == x))
                .cloned()
                .collect();
            let clients = connect(&rt, &p, a.profile.as_deref());
            let paths: Vec<String> = wanted.iter().map(|s| s.path.clone()).collect();
            let meta = rt
                .block_on(pantstack_deploy::secrets::describe(&clients, &paths))
                .map_err(aws_failure)?;
            let now = now_ms() / 1000;
            let mut rows = Vec::new();
            for s in &wanted {
                let m = meta.iter().find(|m| m.path == s.path);
                let due = match (m.and_then(|m| m.changed), s.rotation_days) {
                    (Some(c), Some(d)) => Some(now - c > d * 86_400),
                    _ => None,
                };
                rows.push(json!({
                    "service": s.service,
                    "name": s.variable,
                    "parameter": s.path,
                    "set": m.is_some(),
                    "version": m.map(|m| m.version),
                    "last_changed": m.and_then(|m| m.changed).map(crate::aws::date_secs),
                    "rotation_days": s.rotation_days,
                    "rotation_due": due,
                }));
            }
            if out.json() {
                println!("{}", serde_json::to_string_pretty(&json!(rows)).unwrap_or_default());
            } else {
                for r in &rows {
                    println!(
                        "{:<40} {:<8} {}{}",
                        r["parameter"].as_str().unwrap_or_default(),
                        if r["set"] == json!(true) { "set" } else { "NOT SET" },
                        r["last_changed"].as_str().map(|d| format!("changed {d}")).unwrap_or_default(),
                        match r["rotation_due"].as_bool() {
                            Some(true) => format!("  rotation due (every {} days)", r["rotation_days"]),
                            Some(false) => format!("  rotates every {} days", r["rotation_days"]),
                            None => String::new(),
                        }
                    );
                }
            }
            Ok(())
        }
        SecretsAction::Get { .. } | SecretsAction::RotateKey | SecretsAction::MoveKey => {
            Err(Failure::Usage(
                "on AWS, secrets has set, list, rotate and rm (values stay in SSM: `aws ssm get-parameter --with-decryption` where you may read them; keys are KMS's)".into(),
            ))
        }
    }
}
