//! `bootstrap`: the account's service-linked roles, the shared stack and the
//! environment's foundation, created or updated once by an administrator.

use super::*;

/// Options of `bootstrap`.
#[derive(Clone, Debug, Default)]
pub struct BootstrapOpts {
    /// The account's existing GitHub OIDC provider.
    pub oidc_provider_arn: Option<String>,
}

/// The service-linked roles a fresh account lacks (ECS, ELB, Application Auto
/// Scaling for ECS): created, or already there.
const LINKED_ROLES: &[&str] = &[
    "ecs.amazonaws.com",
    "elasticloadbalancing.amazonaws.com",
    "ecs.application-autoscaling.amazonaws.com",
];

pub async fn bootstrap(e: &Env<'_>, o: &BootstrapOpts) -> Result<Value, Failure> {
    let c = &e.clients;
    let p = &e.progress;
    let mut linked = Vec::new();
    for svc in LINKED_ROLES {
        let key = format!("service-linked role {svc}");
        match c
            .iam
            .create_service_linked_role()
            .aws_service_name(*svc)
            .send()
            .await
        {
            Ok(_) => {
                p.set(&key, "created");
                linked.push(json!({ "service": svc, "state": "created" }));
            }
            Err(err) => match service_error(&err) {
                Some((code, m))
                    if code == "InvalidInput" && (m.contains("taken") || m.contains("exists")) =>
                {
                    p.set(&key, "exists");
                    linked.push(json!({ "service": svc, "state": "exists" }));
                }
                Some((code, _))
                    if code.contains("AccessDenied") || code.contains("Unauthorized") =>
                {
                    return Err(Failure::new(format!(
                        "cannot create the service-linked role of {svc}: {} (bootstrap needs an administrator's credentials)",
                        why(&err)
                    )));
                }
                _ => {
                    return Err(Failure::new(format!(
                        "cannot create the service-linked role of {svc}: {}",
                        why(&err)
                    )));
                }
            },
        }
    }
    // The shared stack (inline: the template bucket is in it).
    let shared = e.shared().clone();
    let existing = stack::describe(c, &shared.name).await?;
    let mut params = vec![if existing.is_some() {
        Param::Previous("EcsServiceLinkedRole".into())
    } else {
        // Just ensured above.
        Param::Value("EcsServiceLinkedRole".into(), "exists".into())
    }];
    if shared
        .parameters
        .iter()
        .any(|x| x.name == "GitHubOidcProviderArn")
    {
        params.push(match &o.oidc_provider_arn {
            Some(a) => Param::Value("GitHubOidcProviderArn".into(), a.clone()),
            None if existing.is_some() => Param::Previous("GitHubOidcProviderArn".into()),
            None => Param::Value("GitHubOidcProviderArn".into(), String::new()),
        });
    }
    let spec = Spec {
        name: shared.name.clone(),
        template: e.template(&shared, None).await?,
        parameters: params,
        capabilities: shared.capabilities.iter().map(|c| c.to_string()).collect(),
        role_arn: None,
        tags: e.tags(),
    };
    let mut results = run_stacks(e, vec![(shared.clone(), spec)]).await;
    let shared_ran = results.remove(0);
    if let Err(f) = &shared_ran.result {
        return Err(stack_failure(
            vec![shared_ran_report(&shared_ran)],
            f.render(),
        ));
    }
    let outs = e.shared_outputs().await?;
    let bucket = outs.output("TemplateBucket").map(str::to_string);
    let mut report = vec![shared_ran_report(&shared_ran)];
    let Some(f) = e.foundation().cloned() else {
        return Ok(json!({ "ok": true, "stacks": report, "service_linked_roles": linked }));
    };
    let spec = Spec {
        name: f.name.clone(),
        template: e.template(&f, bucket.as_deref()).await?,
        parameters: vec![],
        capabilities: f.capabilities.iter().map(|c| c.to_string()).collect(),
        role_arn: None,
        tags: e.tags(),
    };
    let mut results = run_stacks(e, vec![(f.clone(), spec)]).await;
    let fr = results.remove(0);
    report.push(shared_ran_report(&fr));
    if let Err(err) = &fr.result {
        return Err(stack_failure(report, err.render()));
    }
    let get = |k: &str| {
        fr.outputs
            .iter()
            .find(|(x, _)| x == k)
            .map(|(_, v)| v.clone())
    };
    Ok(json!({
        "ok": true,
        "stacks": report,
        "service_linked_roles": linked,
        "repository_uri": outs.output("RepositoryUri"),
        "template_bucket": bucket,
        "deploy_role_arn": get("DeployRoleArn"),
        "ci_role_arn": get("CiRoleArn"),
        "region": c.region,
    }))
}
