//! SSM: allowed patterns.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::state::*;
use crate::keys::Keyring;
use crate::request::Call;
use crate::request::Service;
use serde_json::json;

#[test]
fn allowed_pattern_is_enforced() {
    let dir = std::env::temp_dir().join(format!("pantstack-ssm-{}", std::process::id()));
    let keys = Keyring::open_or_create(&dir.join("k.key")).unwrap();
    let mut p = Params::new("us-east-1", "000000000000");
    let mut put = |value: &str, pattern: &str| {
        let c = Call::parse(
            Service::Ssm,
            "PutParameter",
            json!({"Name": "/n", "Value": value, "Type": "String", "AllowedPattern": pattern, "Overwrite": true}),
            None,
        )
        .unwrap();
        p.handle(&keys, &c, 1, "t").map(|_| ()).map_err(|e| e.code)
    };
    assert_eq!(put("123", r"^\d+$"), Ok(()));
    assert_eq!(
        put("12a", r"^\d+$"),
        Err("ParameterPatternMismatchException".to_string())
    );
    assert_eq!(
        put("1", "(unclosed"),
        Err("InvalidAllowedPatternException".to_string())
    );
    let _ = std::fs::remove_dir_all(&dir);
}
