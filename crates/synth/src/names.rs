//! CloudFormation logical ids. Physical names (stacks, exports, AWS resources) are
//! `pantstack_model::physical`'s, shared with the local cloud.

/// CloudFormation logical id: `order-sync` + `Queue` → `OrderSyncQueue`.
pub fn logical(parts: &[&str]) -> String {
    let mut out = String::new();
    for part in parts {
        for word in part.split(['-', '_', '.']) {
            let mut chars = word.chars();
            if let Some(c) = chars.next() {
                out.push(c.to_ascii_uppercase());
                out.extend(chars.filter(|c| c.is_ascii_alphanumeric()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_ids() {
        assert_eq!(logical(&["order-sync", "Queue"]), "OrderSyncQueue");
        assert_eq!(logical(&["jobs", "dead_letter"]), "JobsDeadLetter");
    }
}
