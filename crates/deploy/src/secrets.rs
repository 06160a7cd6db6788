//! A service's secrets on AWS: SecureString parameters under
//! `/{project}/{env}/{service}/` encrypted with the environment's KMS key. A secret
//! with `rotation_days` gets Parameter Store's `NoChangeNotification` policy
//! (Advanced tier): EventBridge then tells the environment's alarm topic when the
//! value has not changed for that long.

use crate::{Clients, service_error, why};
use aws_sdk_ssm::types::{ParameterStringFilter, ParameterTier, ParameterType};
use serde_json::json;

/// The parameter policy for a rotation period, if any.
pub fn rotation_policy(days: Option<i64>) -> Option<String> {
    days.map(|d| {
        json!([{
            "Type": "NoChangeNotification",
            "Version": "1.0",
            "Attributes": { "After": d.to_string(), "Unit": "Days" },
        }])
        .to_string()
    })
}

/// Sets a secret's value (a new version).
pub async fn set(
    c: &Clients,
    path: &str,
    value: &str,
    kms_alias: &str,
    rotation_days: Option<i64>,
    description: Option<&str>,
) -> Result<i64, String> {
    let mut req = c
        .ssm
        .put_parameter()
        .name(path)
        .value(value)
        .r#type(ParameterType::SecureString)
        .key_id(kms_alias)
        .overwrite(true);
    if let Some(d) = description {
        req = req.description(d);
    }
    if let Some(p) = rotation_policy(rotation_days) {
        req = req.tier(ParameterTier::Advanced).policies(p);
    }
    let out = req
        .send()
        .await
        .map_err(|e| format!("cannot set {path}: {}", why(&e)))?;
    Ok(out.version())
}

/// Deletes a secret (every version). `false` if there was none.
pub async fn remove(c: &Clients, path: &str) -> Result<bool, String> {
    match c.ssm.delete_parameter().name(path).send().await {
        Ok(_) => Ok(true),
        Err(e) => match service_error(&e) {
            Some((code, _)) if code == "ParameterNotFound" => Ok(false),
            _ => Err(format!("cannot delete {path}: {}", why(&e))),
        },
    }
}

/// What Parameter Store knows of a secret (never its value).
#[derive(Clone, Debug)]
pub struct Meta {
    pub path: String,
    pub version: i64,
    /// Seconds since the epoch of the last change.
    pub changed: Option<i64>,
    pub tier: String,
}

/// The metadata of the parameters among `paths` that exist.
pub async fn describe(c: &Clients, paths: &[String]) -> Result<Vec<Meta>, String> {
    let mut out = Vec::new();
    for chunk in paths.chunks(50) {
        let mut token: Option<String> = None;
        loop {
            let r = c
                .ssm
                .describe_parameters()
                .parameter_filters(
                    ParameterStringFilter::builder()
                        .key("Name")
                        .option("Equals")
                        .set_values(Some(chunk.to_vec()))
                        .build()
                        .map_err(|e| e.to_string())?,
                )
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| format!("cannot list parameters: {}", why(&e)))?;
            for p in r.parameters() {
                out.push(Meta {
                    path: p.name().unwrap_or_default().to_string(),
                    version: p.version(),
                    changed: p.last_modified_date().map(|d| d.secs()),
                    tier: p.tier().map(|t| t.as_str().to_string()).unwrap_or_default(),
                });
            }
            token = r.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
    }
    Ok(out)
}

/// The names among `paths` that do not exist.
pub async fn missing(c: &Clients, paths: &[String]) -> Result<Vec<String>, String> {
    let mut missing = Vec::new();
    for chunk in paths.chunks(10) {
        let r = c
            .ssm
            .get_parameters()
            .set_names(Some(chunk.to_vec()))
            .with_decryption(false)
            .send()
            .await
            .map_err(|e| format!("cannot check the secrets: {}", why(&e)))?;
        missing.extend(r.invalid_parameters().iter().cloned());
    }
    Ok(missing)
}

/// Every parameter under a path (recursively), for `down --parameters`.
pub async fn under(c: &Clients, path: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let r = c
            .ssm
            .get_parameters_by_path()
            .path(path)
            .recursive(true)
            .with_decryption(false)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| format!("cannot list {path}: {}", why(&e)))?;
        names.extend(
            r.parameters()
                .iter()
                .filter_map(|p| p.name().map(str::to_string)),
        );
        token = r.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    Ok(names)
}

/// Deletes parameters, ten per call.
pub async fn delete_all(c: &Clients, names: &[String]) -> Result<(), String> {
    for chunk in names.chunks(10) {
        c.ssm
            .delete_parameters()
            .set_names(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| format!("cannot delete parameters: {}", why(&e)))?;
    }
    Ok(())
}
