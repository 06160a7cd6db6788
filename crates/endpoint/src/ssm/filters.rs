//! The filters of DescribeParameters and GetParametersByPath, and the checks of
//! patterns and page sizes.

use super::state::*;
use crate::error::ApiError;
use crate::request::FilterInput;
use pantstack_ssm::Version;
use std::collections::BTreeMap;

/// PutParameter's `AllowedPattern`: the value must match it, as SSM checks.
pub(super) fn check_pattern(pattern: &str, value: &str) -> Result<(), ApiError> {
    if pattern.len() > 1024 {
        return Err(ApiError::bad(
            "ValidationException",
            "1 validation error detected: Value at 'allowedPattern' failed to satisfy constraint: Member must have length less than or equal to 1024",
        ));
    }
    let re = regex_lite::Regex::new(pattern).map_err(|e| {
        ApiError::bad(
            "InvalidAllowedPatternException",
            format!("The allowed pattern {pattern} is not a valid regular expression: {e}"),
        )
    })?;
    if !re.is_match(value) {
        return Err(ApiError::bad(
            "ParameterPatternMismatchException",
            format!("Parameter value, cannot be validated against allowedPattern: {pattern}"),
        ));
    }
    Ok(())
}

/// Which action's filters: the keys and options allowed differ.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Filtered {
    Describe,
    ByPath,
}

/// One `ParameterStringFilter` (or a legacy `ParametersFilter`, as `Equals`).
pub(super) struct Filter {
    pub(super) key: String,
    pub(super) option: String,
    pub(super) values: Vec<String>,
}

/// The filters of a DescribeParameters or GetParametersByPath, checked as the
/// SSM API reference describes `ParameterStringFilter`: the key matches
/// `tag:.+|Name|Type|KeyId|Path|Label|Tier|DataType`; "For DescribeParameters,
/// all of the listed patterns are valid except Label. For GetParametersByPath,
/// the following patterns listed for Key aren't valid: tag, DataType, Name, Path,
/// and Tier"; options `Equals` and `BeginsWith`, `Contains` too for Name (in
/// DescribeParameters), `Recursive` and `OneLevel` for Path, only `Equals` for
/// Label; 1..50 values of 1..1024 characters. DescribeParameters' legacy
/// `Filters` (`ParametersFilter`: Name, Type, KeyId, values matched exactly)
/// cannot be given with `ParameterFilters`. Every refusal is a ValidationException,
/// with the messages AWS sends for them.
pub(super) fn filters(
    legacy: Option<&[FilterInput]>,
    modern: Option<&[FilterInput]>,
    api: Filtered,
) -> Result<Vec<Filter>, ApiError> {
    let (legacy, modern) = (legacy.unwrap_or_default(), modern.unwrap_or_default());
    let strings = |f: &FilterInput, key: &str| -> Result<Vec<String>, ApiError> {
        let values = f.values.clone().unwrap_or_default();
        if values.len() > 50 || values.iter().any(|v| v.is_empty() || v.len() > 1024) {
            return Err(validation(format!(
                "1 validation error detected: Value at 'values' of filter {key} failed to satisfy constraint: Member must have at most 50 values of length 1..1024"
            )));
        }
        Ok(values)
    };
    if !legacy.is_empty() && !modern.is_empty() {
        return Err(validation(
            "You can use either Filters or ParameterFilters in a single request.",
        ));
    }
    let mut out = Vec::new();
    for f in legacy {
        let key = f.key.as_deref().unwrap_or("");
        if !["Name", "Type", "KeyId"].contains(&key) {
            return Err(validation(format!(
                "1 validation error detected: Value '{key}' at 'filters.1.member.key' failed to satisfy constraint: Member must satisfy enum value set: [Name, Type, KeyId]"
            )));
        }
        let values = strings(f, key)?;
        if values.is_empty() {
            return Err(validation(format!(
                "The following filter values are missing : null for filter key {key}."
            )));
        }
        out.push(Filter {
            key: key.to_string(),
            option: "Equals".into(),
            values,
        });
    }
    for f in modern {
        let key = f.key.as_deref().unwrap_or("");
        let known = ["Name", "Type", "KeyId", "Path", "Label", "Tier", "DataType"].contains(&key)
            || key.strip_prefix("tag:").is_some_and(|t| !t.is_empty());
        if !known || key.len() > 132 {
            return Err(validation(format!(
                "1 validation error detected: Value '{key}' at 'parameterFilters.1.member.key' failed to satisfy constraint: Member must satisfy regular expression pattern: tag:.+|Name|Type|KeyId|Path|Label|Tier|DataType"
            )));
        }
        let valid_keys: &[&str] = match api {
            Filtered::Describe => &["Name", "Type", "KeyId", "Path", "Tier", "DataType"],
            Filtered::ByPath => &["Type", "KeyId", "Label"],
        };
        let tag_ok = api == Filtered::Describe && key.starts_with("tag:");
        if !tag_ok && !valid_keys.contains(&key) {
            return Err(validation(format!(
                "The following filter key is not valid: {key}. Valid filter keys include: [{}].",
                valid_keys.join(", ")
            )));
        }
        let options: &[&str] = match (key, api) {
            ("Path", _) => &["Recursive", "OneLevel"],
            ("Name", Filtered::Describe) => &["Equals", "BeginsWith", "Contains"],
            ("Label", _) => &["Equals"],
            _ => &["Equals", "BeginsWith"],
        };
        let default = if key == "Path" { "OneLevel" } else { "Equals" };
        let option = f.option.as_deref().unwrap_or(default);
        if !options.contains(&option) {
            return Err(validation(format!(
                "The following filter option is not valid: {option}. Valid options include: [{}].",
                options.join(", ")
            )));
        }
        let values = strings(f, key)?;
        // `tag:KEY` without values: the parameters that have the tag KEY.
        if values.is_empty() && key != "Path" && !key.starts_with("tag:") {
            return Err(validation(format!(
                "The following filter values are missing : null for filter key {key}."
            )));
        }
        if key == "Path"
            && let Some(v) = values.iter().find(|v| !v.starts_with('/'))
        {
            return Err(validation(format!(
                "The parameter doesn't meet the parameter name requirements. The parameter name must begin with a forward slash \"/\". ({v})"
            )));
        }
        out.push(Filter {
            key: key.to_string(),
            option: option.to_string(),
            values,
        });
    }
    Ok(out)
}

/// Whether a parameter (its version `v`, its tags) passes every filter (any of
/// a filter's values).
pub(super) fn passes(
    filters: &[Filter],
    name: &str,
    v: &Version,
    tags: &BTreeMap<String, String>,
) -> bool {
    // A top-level name is the same with or without its leading slash.
    let bare = |n: &str| -> String {
        if pantstack_ssm::top_level(n) {
            n.trim_start_matches('/').to_string()
        } else {
            n.to_string()
        }
    };
    filters.iter().all(|f| {
        let op = |have: &str, want: &str| match f.option.as_str() {
            "BeginsWith" => have.starts_with(want),
            "Contains" => have.contains(want),
            _ => have == want,
        };
        let under = |want: &str| format!("{}/", want.trim_end_matches('/'));
        f.values.iter().any(|want| match f.key.as_str() {
            "Name" if f.option == "Equals" => bare(name) == bare(want),
            "Name" => op(name, want),
            "Type" => op(v.kind.as_str(), want),
            "KeyId" => v.key_id.as_deref().is_some_and(|k| op(k, want)),
            "Tier" => op("Standard", want),
            "DataType" => op("text", want),
            "Path" if f.option == "Recursive" => name.starts_with(&under(want)),
            "Path" => name
                .strip_prefix(&under(want))
                .is_some_and(|r| !r.contains('/')),
            "Label" => v.labels.iter().any(|l| l == want),
            k => k
                .strip_prefix("tag:")
                .and_then(|t| tags.get(t))
                .is_some_and(|have| op(have, want)),
        }) || (f.key == "Path" && f.values.is_empty())
            || (f.values.is_empty()
                && f.key
                    .strip_prefix("tag:")
                    .is_some_and(|t| tags.contains_key(t)))
    })
}

/// `MaxResults` (1..=`most`, `most` when not given), refused as AWS's model does.
pub(super) fn max_results(given: Option<i64>, most: i64) -> Result<i64, ApiError> {
    let max = given.unwrap_or(most);
    if max < 1 {
        return Err(validation(format!(
            "1 validation error detected: Value '{max}' at 'maxResults' failed to satisfy constraint: Member must have value greater than or equal to 1"
        )));
    }
    if max > most {
        return Err(validation(format!(
            "1 validation error detected: Value '{max}' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to {most}"
        )));
    }
    Ok(max)
}
