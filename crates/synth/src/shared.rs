//! The shared stack `{project}-shared`: what every environment of the project uses
//! once per account and region — the ECR repository of all service images and the
//! GitHub OIDC provider.

use crate::Ctx;
use crate::cfn::{Template, att, if_, r, tags};
use serde_json::{Value, json};

const GITHUB_OIDC_URL: &str = "https://token.actions.githubusercontent.com";

pub fn template(cx: &Ctx<'_>) -> Template {
    let project = cx.project();
    let mut t = Template::new(format!(
        "Pantstack {project}: shared ECR repository and GitHub OIDC provider"
    ));
    let keep = cx.foundation.int("imageRetention").unwrap_or(20);
    let scan = cx
        .foundation
        .get("scanOnPush")
        .and_then(|v| v.value.as_ref())
        .map(|v| v.to_string() == "true")
        .unwrap_or(true);

    t.resource(
        "Repository",
        "AWS::ECR::Repository",
        json!({
            "RepositoryName": cx.repo.foundation.registry,
            "ImageTagMutability": "IMMUTABLE",
            "ImageScanningConfiguration": { "ScanOnPush": scan },
            "EncryptionConfiguration": { "EncryptionType": "KMS" },
            "LifecyclePolicy": { "LifecyclePolicyText": lifecycle_policy(&cx.image_prefixes(), keep) },
            "Tags": tags(project, "shared", None, None),
        }),
    )
    .retain();

    if cx.repo.foundation.github.is_some() {
        t.parameter(
            "GitHubOidcProviderArn",
            json!({
                "Type": "String",
                "Default": "",
                "AllowedPattern": "^(arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/token\\.actions\\.githubusercontent\\.com)?$",
                "Description": "ARN of this account's existing GitHub OIDC provider (there can be only one per account); empty creates it",
            }),
        );
        t.condition(
            "CreateOidcProvider",
            json!({ "Fn::Equals": [r("GitHubOidcProviderArn"), ""] }),
        );
        t.resource(
            "GitHubOidcProvider",
            "AWS::IAM::OIDCProvider",
            json!({
                "Url": GITHUB_OIDC_URL,
                "ClientIdList": ["sts.amazonaws.com"],
                "Tags": tags(project, "shared", None, None),
            }),
        )
        .condition("CreateOidcProvider");
        t.output(
            "GitHubOidcProviderArn",
            if_(
                "CreateOidcProvider",
                att("GitHubOidcProvider", "Arn"),
                r("GitHubOidcProviderArn"),
            ),
            Some(&cx.names.shared_export("GitHubOidcProviderArn")),
        );
    }
    t.output(
        "RepositoryArn",
        att("Repository", "Arn"),
        Some(&cx.names.shared_export("RepositoryArn")),
    );
    t.output(
        "RepositoryUri",
        att("Repository", "RepositoryUri"),
        Some(&cx.names.shared_export("RepositoryUri")),
    );
    t
}

/// ECR lifecycle: keep the last `keep` images of every tag prefix (`api-worker-`,
/// `api-`, ...), most specific prefix first (a rule never expires what an earlier
/// rule matched), and expire untagged images after a day.
pub fn lifecycle_policy(prefixes: &[String], keep: i64) -> String {
    let mut sorted: Vec<&String> = prefixes.iter().collect();
    sorted.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    sorted.dedup();
    let mut rules: Vec<Value> = Vec::new();
    rules.push(json!({
        "rulePriority": 1,
        "description": "expire untagged images after 1 day",
        "selection": { "tagStatus": "untagged", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 1 },
        "action": { "type": "expire" }
    }));
    for (i, p) in sorted.iter().enumerate() {
        rules.push(json!({
            "rulePriority": i + 2,
            "description": format!("keep the last {keep} images tagged {p}*"),
            "selection": { "tagStatus": "tagged", "tagPrefixList": [p], "countType": "imageCountMoreThan", "countNumber": keep },
            "action": { "type": "expire" }
        }));
    }
    serde_json::to_string(&json!({ "rules": rules })).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_rules_go_from_most_specific_prefix() {
        let p = lifecycle_policy(&["api-".into(), "api-worker-".into(), "ab-".into()], 7);
        let v: Value = serde_json::from_str(&p).expect("json");
        let rules = v["rules"].as_array().expect("rules");
        assert_eq!(rules[0]["selection"]["tagStatus"], "untagged");
        let order: Vec<&str> = rules[1..]
            .iter()
            .map(|r| r["selection"]["tagPrefixList"][0].as_str().unwrap_or(""))
            .collect();
        assert_eq!(order, ["api-worker-", "api-", "ab-"]);
        for (i, r) in rules.iter().enumerate() {
            assert_eq!(r["rulePriority"], i + 1);
        }
        assert_eq!(rules[1]["selection"]["countNumber"], 7);
    }
}
