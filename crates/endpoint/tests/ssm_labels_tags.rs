#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

//! SSM parameter labels and tags through the AWS SDK for Rust, as the SSM API
//! reference describes them: LabelParameterVersion (a label moves between the
//! versions of a parameter; invalid labels are listed, not attached; at most 10
//! a version), UnlabelParameterVersion, `name:label` selectors in GetParameter(s),
//! `Labels` in GetParameterHistory, the `Label` filter of GetParametersByPath;
//! AddTagsToResource, RemoveTagsFromResource, ListTagsForResource, PutParameter's
//! `Tags`, the `tag:` filters of DescribeParameters. Both survive a restart
//! (journal replay) and go with a deleted parameter; a service unit's task role
//! may not use them.

mod common;

use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_sdk_ssm::types::{ParameterStringFilter, ParameterType, ResourceTypeForTagging, Tag};
use pantstack_endpoint::iam::Policy;
use pantstack_endpoint::{Config, Core, USER, http};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("").to_string()
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build().unwrap()
}

fn filter(key: &str, option: Option<&str>, values: &[&str]) -> ParameterStringFilter {
    let mut b = ParameterStringFilter::builder().key(key);
    if let Some(o) = option {
        b = b.option(o);
    }
    for v in values {
        b = b.values(*v);
    }
    b.build().unwrap()
}

async fn put(ssm: &aws_sdk_ssm::Client, name: &str, value: &str) -> i64 {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap()
        .version()
}

/// (version, labels) of every kept version, oldest first.
async fn labels(ssm: &aws_sdk_ssm::Client, name: &str) -> Vec<(i64, Vec<String>)> {
    ssm.get_parameter_history()
        .name(name)
        .send()
        .await
        .unwrap()
        .parameters()
        .iter()
        .map(|p| (p.version(), p.labels().to_vec()))
        .collect()
}

/// The tags of a parameter, as ListTagsForResource gives them.
async fn tags(ssm: &aws_sdk_ssm::Client, id: &str) -> Vec<(String, String)> {
    ssm.list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id(id)
        .send()
        .await
        .unwrap()
        .tag_list()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn strings(l: &[&str]) -> Vec<String> {
    l.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_move_between_versions_and_select_them() {
    let l = common::local("ssm-labels").await;
    let ssm = aws_sdk_ssm::Client::new(&l.conf);
    for v in ["a", "b", "c"] {
        put(&ssm, "/app/url", v).await;
    }
    put(&ssm, "/app/other", "o").await;

    // No version: the latest. Invalid labels are listed, not attached.
    let r = ssm
        .label_parameter_version()
        .name("/app/url")
        .labels("prod")
        .labels("1st")
        .labels("AWS-x")
        .labels("Ssm.x")
        .labels("has space")
        .send()
        .await
        .unwrap();
    assert_eq!(r.parameter_version(), 3);
    assert_eq!(
        r.invalid_labels(),
        strings(&["1st", "AWS-x", "Ssm.x", "has space"])
    );
    let got = ssm
        .get_parameter()
        .name("/app/url:prod")
        .send()
        .await
        .unwrap();
    let p = got.parameter().unwrap();
    assert_eq!(
        (p.name(), p.value(), p.version(), p.selector()),
        (Some("/app/url"), Some("c"), 3, Some(":prod"))
    );

    // Attached to version 1, the label moves from version 3.
    let r = ssm
        .label_parameter_version()
        .name("/app/url")
        .parameter_version(1)
        .labels("prod")
        .labels("first")
        .send()
        .await
        .unwrap();
    assert_eq!((r.parameter_version(), r.invalid_labels()), (1, &[][..]));
    assert_eq!(
        labels(&ssm, "/app/url").await,
        vec![(1, strings(&["prod", "first"])), (2, vec![]), (3, vec![])]
    );
    let got = ssm
        .get_parameter()
        .name("/app/url:prod")
        .send()
        .await
        .unwrap();
    assert_eq!(got.parameter().unwrap().value(), Some("a"));

    // A label no version carries.
    let e = ssm
        .get_parameter()
        .name("/app/url:staging")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ParameterVersionLabelNotFound");
    let r = ssm
        .get_parameters()
        .names("/app/url:first")
        .names("/app/url:staging")
        .names("/app/other")
        .send()
        .await
        .unwrap();
    let found: Vec<_> = r
        .parameters()
        .iter()
        .map(|p| (p.name().unwrap(), p.value().unwrap(), p.selector()))
        .collect();
    assert_eq!(
        found,
        vec![("/app/url", "a", Some(":first")), ("/app/other", "o", None)]
    );
    assert_eq!(r.invalid_parameters(), strings(&["/app/url:staging"]));

    // GetParametersByPath's Label filter: the labeled version.
    let by_label = |label: &str| {
        ssm.get_parameters_by_path()
            .path("/app")
            .parameter_filters(filter("Label", Some("Equals"), &[label]))
            .send()
    };
    let r = by_label("prod").await.unwrap();
    let found: Vec<_> = r
        .parameters()
        .iter()
        .map(|p| (p.name().unwrap(), p.version(), p.value().unwrap()))
        .collect();
    assert_eq!(found, vec![("/app/url", 1, "a")]);
    assert!(by_label("nope").await.unwrap().parameters().is_empty());

    // Unlabel: what was removed, and the labels that version did not carry.
    let r = ssm
        .unlabel_parameter_version()
        .name("/app/url")
        .parameter_version(1)
        .labels("first")
        .labels("absent")
        .send()
        .await
        .unwrap();
    assert_eq!(r.removed_labels(), strings(&["first"]));
    assert_eq!(r.invalid_labels(), strings(&["absent"]));
    assert_eq!(labels(&ssm, "/app/url").await[0].1, strings(&["prod"]));

    // Limits: 1..10 labels a call, 10 a version.
    let mut call = ssm.label_parameter_version().name("/app/url");
    for i in 0..11 {
        call = call.labels(format!("l{i}"));
    }
    assert_eq!(code(&call.send().await.unwrap_err()), "ValidationException");
    let mut call = ssm.label_parameter_version().name("/app/url");
    for i in 0..10 {
        call = call.labels(format!("l{i}"));
    }
    call.send().await.unwrap();
    let e = ssm
        .label_parameter_version()
        .name("/app/url")
        .labels("prod")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ParameterVersionLabelLimitExceeded");
    assert_eq!(labels(&ssm, "/app/url").await[0].1, strings(&["prod"]));
    let e = ssm
        .label_parameter_version()
        .name("/app/url")
        .parameter_version(9)
        .labels("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ParameterVersionNotFound");
    let e = ssm
        .label_parameter_version()
        .name("/app/none")
        .labels("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ParameterNotFound");

    // Deleting the parameter deletes its labels.
    ssm.delete_parameter()
        .name("/app/url")
        .send()
        .await
        .unwrap();
    put(&ssm, "/app/url", "new").await;
    let e = ssm
        .get_parameter()
        .name("/app/url:prod")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ParameterVersionLabelNotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_added_listed_removed_and_filtered() {
    let l = common::local("ssm-tags").await;
    let ssm = aws_sdk_ssm::Client::new(&l.conf);
    let arn = |rest: &str| format!("arn:aws:ssm:eu-west-1:000000000000:parameter/{rest}");
    ssm.put_parameter()
        .name("/app/a")
        .value("v")
        .r#type(ParameterType::String)
        .tags(tag("team", "payments"))
        .tags(tag("env", "prod"))
        .send()
        .await
        .unwrap();
    put(&ssm, "/app/b", "v").await;
    put(&ssm, "/app/c", "v").await;
    assert_eq!(
        tags(&ssm, "/app/a").await,
        pairs(&[("env", "prod"), ("team", "payments")])
    );
    assert!(tags(&ssm, "/app/b").await.is_empty());

    // Tags and Overwrite cannot be given together (even for a new name).
    let e = ssm
        .put_parameter()
        .name("/app/new")
        .value("v")
        .r#type(ParameterType::String)
        .overwrite(true)
        .tags(tag("k", "v"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ValidationException");

    // Added by name or ARN; a key given again gets the new value.
    ssm.add_tags_to_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id(arn("app/b"))
        .tags(tag("team", "pay-ops"))
        .tags(tag("cost", ""))
        .send()
        .await
        .unwrap();
    ssm.add_tags_to_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id("/app/a")
        .tags(tag("env", "staging"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags(&ssm, &arn("app/a")).await,
        pairs(&[("env", "staging"), ("team", "payments")])
    );
    assert_eq!(
        tags(&ssm, "/app/b").await,
        pairs(&[("cost", ""), ("team", "pay-ops")])
    );

    // DescribeParameters' tag filters: a value Equals or BeginsWith, or the key alone.
    let described =
        |f: ParameterStringFilter| ssm.describe_parameters().parameter_filters(f).send();
    let names = |r: aws_sdk_ssm::operation::describe_parameters::DescribeParametersOutput| {
        r.parameters()
            .iter()
            .map(|p| p.name().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    for (f, want) in [
        (filter("tag:team", None, &["payments"]), vec!["/app/a"]),
        (
            filter("tag:team", Some("BeginsWith"), &["pay"]),
            vec!["/app/a", "/app/b"],
        ),
        (
            filter("tag:env", Some("Equals"), &["prod", "staging"]),
            vec!["/app/a"],
        ),
        (filter("tag:cost", None, &[]), vec!["/app/b"]),
        (filter("tag:none", None, &[]), vec![]),
    ] {
        assert_eq!(names(described(f.clone()).await.unwrap()), want, "{f:?}");
    }

    // Removed by key (keys it does not have are ignored).
    ssm.remove_tags_from_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id("/app/a")
        .tag_keys("team")
        .tag_keys("absent")
        .send()
        .await
        .unwrap();
    assert_eq!(tags(&ssm, "/app/a").await, pairs(&[("env", "staging")]));

    // At most 50 tags: refused whole.
    let mut call = ssm
        .add_tags_to_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id("/app/c");
    for i in 0..51 {
        call = call.tags(tag(&format!("k{i}"), "v"));
    }
    assert_eq!(code(&call.send().await.unwrap_err()), "TooManyTagsError");
    assert!(tags(&ssm, "/app/c").await.is_empty());
    // Keys and values as the Tag type allows.
    for (k, v) in [("bad*key", "v"), ("k", "bad!value")] {
        let e = ssm
            .add_tags_to_resource()
            .resource_type(ResourceTypeForTagging::Parameter)
            .resource_id("/app/c")
            .tags(tag(k, v))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "ValidationException", "{k}={v}");
    }

    // Another resource type; a parameter that does not exist.
    let e = ssm
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Document)
        .resource_id("my-doc")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidResourceType");
    for id in [
        "/app/none".to_string(),
        "arn:aws:ssm:us-east-1:000000000000:parameter/app/a".to_string(),
    ] {
        let e = ssm
            .add_tags_to_resource()
            .resource_type(ResourceTypeForTagging::Parameter)
            .resource_id(&id)
            .tags(tag("k", "v"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "InvalidResourceId", "{id}");
    }

    // Deleting the parameter deletes its tags.
    ssm.delete_parameter().name("/app/b").send().await.unwrap();
    let e = ssm
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id("/app/b")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidResourceId");
    put(&ssm, "/app/b", "again").await;
    assert!(tags(&ssm, "/app/b").await.is_empty());
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(dir: &Path, policies: HashMap<String, Policy>) -> Config {
    Config {
        dir: dir.join("aws"),
        key_file: dir.join("keys/test.key"),
        region: "eu-west-1".into(),
        principals: vec!["api".into()],
        policies,
        compact_min_bytes: pantstack_endpoint::DEFAULT_COMPACT_MIN,
    }
}

async fn open(dir: &Path, policies: HashMap<String, Policy>) -> (Arc<Core>, http::Server) {
    // The previous endpoint's thread lets go of the state's lock as it ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    let core = loop {
        match Core::open(&config(dir, policies.clone())) {
            Ok(c) => break Arc::new(c),
            Err(e) if Instant::now() < deadline && e.contains("in use") => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("open: {e}"),
        }
    };
    let server = http::serve(core.clone(), 0).await.expect("serve");
    (core, server)
}

/// Every label and tag change is journaled: a restart replays them exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_and_tags_survive_a_restart() {
    let dir = TempDir(std::env::temp_dir().join(format!(
        "pantstack-ssm-labels-restart-{}",
        std::process::id()
    )));
    let _ = std::fs::remove_dir_all(&dir.0);
    let (core, server) = open(&dir.0, HashMap::new()).await;
    let conf = common::sdk_config(&server.url(), "eu-west-1", core.credentials(USER)).await;
    let ssm = aws_sdk_ssm::Client::new(&conf);
    ssm.put_parameter()
        .name("/app/x")
        .value("1")
        .r#type(ParameterType::String)
        .tags(tag("team", "a"))
        .tags(tag("gone", "soon"))
        .send()
        .await
        .unwrap();
    put(&ssm, "/app/x", "2").await;
    put(&ssm, "/app/x", "3").await;
    for (version, label) in [(1, "prod"), (2, "beta"), (2, "prod"), (3, "tmp")] {
        ssm.label_parameter_version()
            .name("/app/x")
            .parameter_version(version)
            .labels(label)
            .send()
            .await
            .unwrap();
    }
    ssm.unlabel_parameter_version()
        .name("/app/x")
        .parameter_version(3)
        .labels("tmp")
        .send()
        .await
        .unwrap();
    ssm.add_tags_to_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id("/app/x")
        .tags(tag("team", "b"))
        .tags(tag("env", "prod"))
        .send()
        .await
        .unwrap();
    ssm.remove_tags_from_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id("/app/x")
        .tag_keys("gone")
        .send()
        .await
        .unwrap();
    let want_labels = vec![(1, vec![]), (2, strings(&["beta", "prod"])), (3, vec![])];
    let want_tags = pairs(&[("env", "prod"), ("team", "b")]);
    assert_eq!(labels(&ssm, "/app/x").await, want_labels);
    assert_eq!(tags(&ssm, "/app/x").await, want_tags);
    let image = core.image().unwrap();

    server.shutdown();
    drop((ssm, core, server));
    let (core, server) = open(&dir.0, HashMap::new()).await;
    assert!(
        core.image().unwrap() == image,
        "the replayed state differs from the state before"
    );
    let conf = common::sdk_config(&server.url(), "eu-west-1", core.credentials(USER)).await;
    let ssm = aws_sdk_ssm::Client::new(&conf);
    assert_eq!(labels(&ssm, "/app/x").await, want_labels);
    assert_eq!(tags(&ssm, "/app/x").await, want_tags);
    let got = ssm
        .get_parameter()
        .name("/app/x:prod")
        .send()
        .await
        .unwrap();
    assert_eq!(got.parameter().unwrap().value(), Some("2"));
    server.shutdown();
}

/// A unit's task role has GetParameter, GetParameters and GetParametersByPath on
/// its path, nothing more: labels and tags are refused as AWS refuses them; the
/// `user` principal may use them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unit_may_not_label_or_tag_its_parameters() {
    let dir = TempDir(
        std::env::temp_dir().join(format!("pantstack-ssm-labels-iam-{}", std::process::id())),
    );
    let _ = std::fs::remove_dir_all(&dir.0);
    let arn = "arn:aws:ssm:eu-west-1:000000000000:parameter/p/api/TOKEN";
    let api = Policy::default().allow(
        pantstack_model::iam::PARAMETER_ACTIONS,
        vec![
            "arn:aws:ssm:eu-west-1:000000000000:parameter/p/api".into(),
            "arn:aws:ssm:eu-west-1:000000000000:parameter/p/api/*".into(),
        ],
    );
    let (core, server) = open(&dir.0, HashMap::from([("api".to_string(), api)])).await;
    let user = aws_sdk_ssm::Client::new(
        &common::sdk_config(&server.url(), "eu-west-1", core.credentials(USER)).await,
    );
    let unit = aws_sdk_ssm::Client::new(
        &common::sdk_config(&server.url(), "eu-west-1", core.credentials("api")).await,
    );
    put(&user, "/p/api/TOKEN", "v").await;
    assert_eq!(
        unit.get_parameter()
            .name("/p/api/TOKEN")
            .send()
            .await
            .unwrap()
            .parameter()
            .unwrap()
            .value(),
        Some("v")
    );
    let refused = |e: &dyn ProvideErrorMetadata, action: &str| {
        assert_eq!(e.code(), Some("AccessDeniedException"), "{action}");
        let m = e.message().unwrap_or_default();
        assert!(
            m.contains(&format!(
                "not authorized to perform: {action} on resource: {arn} "
            )),
            "{m}"
        );
    };
    let e = unit
        .add_tags_to_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id("/p/api/TOKEN")
        .tags(tag("k", "v"))
        .send()
        .await
        .unwrap_err();
    refused(&e, "ssm:AddTagsToResource");
    let e = unit
        .remove_tags_from_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id(arn)
        .tag_keys("k")
        .send()
        .await
        .unwrap_err();
    refused(&e, "ssm:RemoveTagsFromResource");
    let e = unit
        .list_tags_for_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id("/p/api/TOKEN")
        .send()
        .await
        .unwrap_err();
    refused(&e, "ssm:ListTagsForResource");
    let e = unit
        .label_parameter_version()
        .name("/p/api/TOKEN")
        .labels("prod")
        .send()
        .await
        .unwrap_err();
    refused(&e, "ssm:LabelParameterVersion");
    let e = unit
        .unlabel_parameter_version()
        .name("/p/api/TOKEN")
        .parameter_version(1)
        .labels("prod")
        .send()
        .await
        .unwrap_err();
    refused(&e, "ssm:UnlabelParameterVersion");
    // Nothing was changed by the refused calls; the user may do all of it.
    assert!(tags(&user, "/p/api/TOKEN").await.is_empty());
    user.add_tags_to_resource()
        .resource_type(ResourceTypeForTagging::Parameter)
        .resource_id("/p/api/TOKEN")
        .tags(tag("k", "v"))
        .send()
        .await
        .unwrap();
    user.label_parameter_version()
        .name("/p/api/TOKEN")
        .labels("prod")
        .send()
        .await
        .unwrap();
    // The unit reads by label, as GetParameter allows it.
    let got = unit
        .get_parameter()
        .name("/p/api/TOKEN:prod")
        .send()
        .await
        .unwrap();
    assert_eq!(got.parameter().unwrap().value(), Some("v"));
    assert_eq!(tags(&user, "/p/api/TOKEN").await, pairs(&[("k", "v")]));
    server.shutdown();
}
