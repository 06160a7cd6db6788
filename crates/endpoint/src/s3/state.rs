//! The endpoint's S3 state: the pure model of `pantstack_s3` and, beside it,
//! each bucket policy parsed (authorizing a request reads it; parsed once, when
//! an op sets or replays a bucket's configuration).

pub use pantstack_s3::*;

use crate::policy_doc::PolicyDoc;
use std::collections::HashMap;
use std::sync::Arc;

/// The buckets and objects, and their parsed policies.
#[derive(Default)]
pub struct State {
    objects: Objects,
    /// Each bucket policy, parsed (checked when it was put): what authorizing a
    /// request reads.
    pub policies: HashMap<String, Arc<PolicyDoc>>,
}

impl std::ops::Deref for State {
    type Target = Objects;
    fn deref(&self) -> &Objects {
        &self.objects
    }
}

impl std::ops::DerefMut for State {
    fn deref_mut(&mut self) -> &mut Objects {
        &mut self.objects
    }
}

impl State {
    /// Applies an op (`Objects::apply`) and keeps the parsed policies in step.
    pub fn apply(&mut self, op: &Op) -> Garbage {
        let garbage = self.objects.apply(op);
        match op {
            Op::DeleteBucket { name } => {
                self.policies.remove(name);
            }
            Op::Config { name, .. } | Op::ImageBucket { name, .. } => self.parse_policy(name),
            _ => {}
        }
        garbage
    }

    /// Caches the parsed policy of a bucket (the text was checked when put).
    fn parse_policy(&mut self, name: &str) {
        let doc = self
            .buckets
            .get(name)
            .and_then(|b| b.config.policy.as_deref())
            .and_then(|text| PolicyDoc::parse(text, "s3", &|_| true).ok());
        match doc {
            Some(d) => self.policies.insert(name.to_string(), Arc::new(d)),
            None => self.policies.remove(name),
        };
    }
}
