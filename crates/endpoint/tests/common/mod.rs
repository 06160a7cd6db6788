//! What the SDK tests share: an SDK configuration pointed at a local endpoint.

use pantstack_endpoint::keys::Credentials;
use pantstack_endpoint::{Config, Core, http};
use std::path::PathBuf;
use std::sync::Arc;

/// The AWS SDK's configuration for `url`, signing with `creds` in `region` (static
/// credentials: the default chain is never consulted).
pub async fn sdk_config(url: &str, region: &str, creds: Credentials) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            creds.access_key,
            creds.secret_key,
            None,
            None,
            "pantstack-test",
        ))
        .load()
        .await
}

/// An endpoint of its own (state in a temp directory, removed on drop) and an SDK
/// configuration signing as the unit `api` (unrestricted: no policy), region
/// `eu-west-1`.
#[allow(dead_code)] // not every test crate uses it
pub struct Local {
    pub _server: http::Server,
    pub conf: aws_config::SdkConfig,
    pub dir: PathBuf,
    pub core: Arc<Core>,
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[allow(dead_code)]
pub async fn local(name: &str) -> Local {
    let dir = std::env::temp_dir().join(format!("pantstack-sdk-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let core = Arc::new(
        Core::open(&Config {
            dir: dir.join("aws"),
            key_file: dir.join("keys/test.key"),
            region: "eu-west-1".into(),
            principals: vec!["api".into()],
            policies: Default::default(),
            compact_min_bytes: pantstack_endpoint::DEFAULT_COMPACT_MIN,
        })
        .expect("open"),
    );
    let server = http::serve(core.clone(), 0).await.expect("serve");
    let creds = core.credentials("api");
    let conf = sdk_config(&server.url(), "eu-west-1", creds).await;
    Local {
        _server: server,
        conf,
        dir,
        core,
    }
}
