//! Names that end up in AWS resource names, DNS labels and Docker tags.

/// Longest service name: `{project}-{env}-{service}` must still fit the 32-character
/// limit of ALB and target group names after the synthesizer shortens the rest.
pub const MAX_SERVICE_NAME: usize = 24;
pub const MAX_PROJECT_NAME: usize = 20;
pub const MAX_ENV_NAME: usize = 16;

/// Checks a lowercase DNS-label-like name (`a-z`, `0-9`, `-`; starts with a letter;
/// no trailing or doubled `-`). Returns why it is invalid.
pub fn check_label(name: &str, what: &str, max: usize) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("{what} name is empty"));
    }
    if name.len() > max {
        return Err(format!(
            "{what} name `{name}` is {} characters; at most {max} are allowed",
            name.len()
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!(
            "{what} name `{name}` must start with a lowercase letter"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "{what} name `{name}` contains `{c}`; use lowercase letters, digits and `-` (it is used in AWS resource names and Docker tags)"
        ));
    }
    if name.ends_with('-') || name.contains("--") {
        return Err(format!(
            "{what} name `{name}` must not end with `-` or contain `--`"
        ));
    }
    Ok(())
}

/// A suggestion for an invalid name: lowercased, other characters replaced by `-`.
pub fn suggest_label(name: &str, max: usize) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let mut out: String = out.trim_end_matches('-').chars().take(max).collect();
    while out.ends_with('-') {
        out.pop();
    }
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "svc-");
    }
    out
}

pub fn check_service_name(name: &str) -> Result<(), String> {
    check_label(name, "service", MAX_SERVICE_NAME)?;
    if name.ends_with("-worker") || name == "worker" {
        return Err(format!(
            "service name `{name}` must not end with `worker`: worker images are tagged `{{service}}-worker-...`, so it would clash"
        ));
    }
    // `service-connect` and `load-balancer`: environment-wide stacks on AWS.
    if matches!(
        name,
        "foundation" | "stack" | "modules" | "service-connect" | "load-balancer"
    ) {
        return Err(format!("service name `{name}` is reserved"));
    }
    Ok(())
}

/// Environment variable names: `[A-Z_][A-Z0-9_]*`.
pub fn check_env_var(name: &str) -> Result<(), String> {
    let ok = name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid environment variable name; use uppercase letters, digits and `_` (e.g. `{}`)",
            name.to_ascii_uppercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ))
    }
}

/// Variables every task gets from Pantstack; a manifest may not set them.
pub const RESERVED_VARS: &[&str] = &[
    "PORT",
    "SERVICE_NAME",
    "ENVIRONMENT",
    "PANTSTACK_ROLE",
    crate::iam::METRICS_NAMESPACE_VAR,
];

pub fn is_reserved_var(name: &str) -> bool {
    RESERVED_VARS.contains(&name) || name.starts_with("AWS_") || name.starts_with("ECS_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(check_service_name("api").is_ok());
        assert!(check_service_name("billing-api2").is_ok());
        assert!(check_service_name("Api").is_err());
        assert!(check_service_name("my_api").is_err());
        assert!(check_service_name("api-").is_err());
        assert!(check_service_name("a--b").is_err());
        assert!(check_service_name("2api").is_err());
        assert!(check_service_name("jobs-worker").is_err());
        assert!(check_service_name(&"a".repeat(25)).is_err());
        assert_eq!(suggest_label("My_API", 24), "my-api");
    }

    #[test]
    fn env_vars() {
        assert!(check_env_var("LOG_LEVEL").is_ok());
        assert!(check_env_var("log-level").is_err());
        assert!(is_reserved_var("AWS_REGION"));
        assert!(is_reserved_var("PORT"));
    }
}
