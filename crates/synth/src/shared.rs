//! The shared stack `{project}-shared`: what every environment of the project uses
//! once per account and region — the ECR repository of all service images, the
//! GitHub OIDC provider and ECS's service-linked role (both account-wide: each
//! skipped by a parameter where the account already has it).

use crate::Ctx;
use crate::cfn::{Template, att, if_, r, tags};
use pantstack_model::settings::keys;
use serde_json::json;

const GITHUB_OIDC_URL: &str = "https://token.actions.githubusercontent.com";

pub fn template(cx: &Ctx<'_>) -> Template {
    let project = cx.project();
    let mut t = Template::new(format!(
        "Pantstack {project}: shared ECR repository and GitHub OIDC provider"
    ));
    let environments: Vec<(String, Vec<String>)> = cx
        .repo
        .foundation
        .environments
        .iter()
        .map(|e| (e.name.clone(), e.branches.clone()))
        .collect();
    let scan = cx.foundation.get(keys::SCAN_ON_PUSH);
    let services: Vec<(String, bool)> = cx
        .repo
        .services
        .iter()
        .map(|u| (u.service.name.clone(), u.service.worker.is_some()))
        .collect();

    t.resource(
        "Repository",
        "AWS::ECR::Repository",
        json!({
            "RepositoryName": cx.repo.foundation.registry,
            "ImageTagMutability": "IMMUTABLE",
            "ImageScanningConfiguration": { "ScanOnPush": scan },
            "EncryptionConfiguration": { "EncryptionType": "KMS" },
            "LifecyclePolicy": { "LifecyclePolicyText": crate::lifecycle::policy(&services, &environments, branch_image_days(cx)) },
            "Tags": tags(project, "shared", None, None),
        }),
    )
    .retain();

    // ECS's service-linked role: a cluster with the FARGATE / FARGATE_SPOT
    // capacity providers cannot be created in an account that does not have it yet
    // (ECS creates it on demand only for CreateService). Account-wide, and
    // CloudFormation fails if it exists: `exists` skips it. ELB's and Application
    // Auto Scaling's are created on demand by CreateLoadBalancer and
    // RegisterScalableTarget (the deploy role may: `ServiceLinkedRoles`).
    t.parameter(
        "EcsServiceLinkedRole",
        json!({
            "Type": "String",
            "Default": "create",
            "AllowedValues": ["create", "exists"],
            "Description": "create: this stack creates AWSServiceRoleForECS; exists: the account already has it (aws iam get-role --role-name AWSServiceRoleForECS), e.g. from another region's shared stack",
        }),
    );
    t.condition(
        "CreateEcsServiceLinkedRole",
        json!({ "Fn::Equals": [r("EcsServiceLinkedRole"), "create"] }),
    );
    t.resource(
        "EcsLinkedRole",
        "AWS::IAM::ServiceLinkedRole",
        json!({
            "AWSServiceName": "ecs.amazonaws.com",
            "Description": "ECS (Fargate capacity providers) for every Pantstack cluster of this account",
        }),
    )
    .condition("CreateEcsServiceLinkedRole")
    .retain();

    // Disaster recovery: every image of the repository also in another region, so
    // that the same templates deployed there (`--region`) find their images. An
    // account has one replication configuration per region: this one owns it.
    if let Some(region) = cx.foundation.get(keys::IMAGE_REPLICA_REGION) {
        t.condition(
            "ReplicateImages",
            json!({ "Fn::Not": [{ "Fn::Equals": [r("AWS::Region"), region] }] }),
        );
        t.resource(
            "ImageReplication",
            "AWS::ECR::ReplicationConfiguration",
            json!({
                "ReplicationConfiguration": { "Rules": [{
                    "Destinations": [{ "Region": region, "RegistryId": r("AWS::AccountId") }],
                    "RepositoryFilters": [{ "Filter": cx.repo.foundation.registry, "FilterType": "PREFIX_MATCH" }],
                }] },
            }),
        )
        .condition("ReplicateImages");
    }

    // Where `pantstack deploy` uploads the (minified) templates it deploys:
    // CloudFormation takes a template over 51,200 bytes only from S3. Versioned, so
    // every deployed template stays readable for its lifecycle's 90 days.
    let mut props = crate::storage::log_bucket_props(tags(project, "shared", None, None), Some(1));
    props["LifecycleConfiguration"]["Rules"][0]["Id"] = json!("expire-templates");
    t.resource("TemplateBucket", "AWS::S3::Bucket", props)
        .skip(&[crate::skips::TEMPLATE_BUCKET_LOGGING]);
    let bucket_arn = att("TemplateBucket", "Arn");
    t.resource(
        "TemplateBucketPolicy",
        "AWS::S3::BucketPolicy",
        json!({
            "Bucket": r("TemplateBucket"),
            "PolicyDocument": crate::cfn::policy(vec![crate::cfn::deny_insecure_transport(
                vec![bucket_arn.clone(), crate::cfn::join("", vec![bucket_arn, json!("/*")])],
                "s3:*",
            )]),
        }),
    );
    t.output(
        "TemplateBucket",
        r("TemplateBucket"),
        Some(&cx.names.shared_export("TemplateBucket")),
    );

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

/// Days a branch or pull-request image is kept: `registry.keep_images`, but never
/// less than a preview's idle TTL plus a week (an idle preview is destroyed after
/// its TTL, so no environment runs an older branch image).
pub fn branch_image_days(cx: &Ctx<'_>) -> i64 {
    let keep = cx.foundation.get(keys::IMAGE_RETENTION);
    let ttl_days = cx.foundation.get(keys::PREVIEW_TTL).div_ceil(86_400);
    keep.max(i64::try_from(ttl_days).unwrap_or(90) + 7)
}
