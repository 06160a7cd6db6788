//! The SSM Parameter Store actions and their typed requests: one struct per
//! action (its members besides the resource's), one [`SsmRequest`] over them.

use super::members::{FilterInput, Tag, parameter_version};

actions! {
    SsmAction, SsmRequest {
        PutParameter Name {
            description: Option<String> = "Description",
            value: Option<String> = "Value",
            kind: Option<String> = "Type",
            key_id: Option<String> = "KeyId",
            overwrite: Option<bool> = "Overwrite",
            allowed_pattern: Option<String> = "AllowedPattern",
            tags: Option<Vec<Tag>> = "Tags",
            tier: Option<String> = "Tier",
            policies: Option<String> = "Policies",
            data_type: Option<String> = "DataType",
        }
        GetParameter Name {
            with_decryption: Option<bool> = "WithDecryption",
        }
        GetParameters Names {
            with_decryption: Option<bool> = "WithDecryption",
        }
        GetParametersByPath Path {
            recursive: Option<bool> = "Recursive",
            parameter_filters: Option<Vec<FilterInput>> = "ParameterFilters",
            with_decryption: Option<bool> = "WithDecryption",
            max_results: Option<i64> = "MaxResults",
            next_token: Option<String> = "NextToken",
        }
        DeleteParameter Name {}
        DeleteParameters Names {}
        DescribeParameters Nothing {
            filters: Option<Vec<FilterInput>> = "Filters",
            parameter_filters: Option<Vec<FilterInput>> = "ParameterFilters",
            max_results: Option<i64> = "MaxResults",
            next_token: Option<String> = "NextToken",
            shared: Option<bool> = "Shared",
        }
        GetParameterHistory Name {
            with_decryption: Option<bool> = "WithDecryption",
            max_results: Option<i64> = "MaxResults",
            next_token: Option<String> = "NextToken",
        }
        LabelParameterVersion Name {
            parameter_version: Option<u64> = "ParameterVersion" with parameter_version,
            labels: Option<Vec<String>> = "Labels",
        }
        UnlabelParameterVersion Name {
            parameter_version: Option<u64> = "ParameterVersion" with parameter_version,
            labels: Option<Vec<String>> = "Labels",
        }
        AddTagsToResource TagResource {
            resource_type: Option<String> = "ResourceType",
            tags: Option<Vec<Tag>> = "Tags",
        }
        RemoveTagsFromResource TagResource {
            resource_type: Option<String> = "ResourceType",
            tag_keys: Option<Vec<String>> = "TagKeys",
        }
        ListTagsForResource TagResource {
            resource_type: Option<String> = "ResourceType",
        }
    }
}

impl SsmRequest {
    /// `WithDecryption`, for the actions that have it (false when not given).
    pub fn with_decryption(&self) -> bool {
        match self {
            SsmRequest::GetParameter(r) => r.with_decryption,
            SsmRequest::GetParameters(r) => r.with_decryption,
            SsmRequest::GetParametersByPath(r) => r.with_decryption,
            SsmRequest::GetParameterHistory(r) => r.with_decryption,
            _ => None,
        }
        .unwrap_or(false)
    }
}
