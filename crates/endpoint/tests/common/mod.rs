//! What the SDK tests share: an SDK configuration pointed at a local endpoint.

use pantstack_endpoint::keys::Credentials;

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
