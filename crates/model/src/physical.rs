//! Physical names: what the resources of an environment are called on AWS (and,
//! the same, in the local cloud), and where a queue is addressed.
//!
//! Every physical name starts with `{project}-{env}-`, so IAM policies can scope the
//! CI role and CloudFormation's role to one project and environment by prefix.
//! A queue URL is `{endpoint}/{account}/{name}` on AWS and in the local cloud
//! alike: [`queue_url`] writes it, [`queue_of_url`] reads it back.

/// FNV-1a, 32 bits, as 8 hex digits: short, stable suffixes for names that must be
/// shortened.
pub fn short_hash(s: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// `name` if it fits in `max` bytes, else its head, `-`, and a hash of the whole
/// (so two long names never collide and the prefix is kept).
pub fn fit(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let keep = max.saturating_sub(9);
    let head = name[..keep].trim_end_matches('-');
    format!("{head}-{}", short_hash(name))
}

/// The longest region code (`ap-southeast-3`, `eusc-de-east-1`).
pub const MAX_REGION: usize = 14;

/// `name-${AWS::Region}` (an `Fn::Sub` string) for an account-wide name of at most
/// `max` bytes once the region is substituted: the name is shortened with `fit`
/// to leave room for `-` and the longest region.
pub fn regional(name: &str, max: usize) -> String {
    format!("{}-${{AWS::Region}}", fit(name, max - 1 - MAX_REGION))
}

/// Names of one environment. `base` is the environment whose foundation it uses:
/// itself, or `preview` for every `preview-<pr>` (previews share one foundation,
/// bootstrapped once, whose CI role creates and deletes their service stacks).
pub struct Names<'a> {
    pub project: &'a str,
    pub env: &'a str,
    pub base: &'a str,
}

impl<'a> Names<'a> {
    /// The names of environment `env` of `project`, on the foundation it uses
    /// (`Monorepo::stack_name`).
    pub fn new(project: &'a str, env: &'a str) -> Names<'a> {
        Names {
            project,
            env,
            base: crate::Monorepo::stack_name(env),
        }
    }

    /// `{project}-{env}`: the prefix of every name in the environment.
    pub fn prefix(&self) -> String {
        format!("{}-{}", self.project, self.env)
    }

    /// `{project}-{base}`: the prefix of the foundation's own names.
    pub fn base_prefix(&self) -> String {
        format!("{}-{}", self.project, self.base)
    }

    fn previews(&self) -> bool {
        self.base != self.env || self.base == crate::foundation::PREVIEW_STACK
    }

    /// Pattern (IAM `*`) matching every physical name the foundation's roles may
    /// touch: `{project}-{env}-*`, or `{project}-preview-*` for previews.
    pub fn scope(&self) -> String {
        format!("{}-*", self.base_prefix())
    }

    /// Log-group name patterns of the foundation's scope.
    pub fn log_scopes(&self) -> Vec<String> {
        let mut v = vec![format!("/pantstack/{}/{}/*", self.project, self.base)];
        if self.previews() {
            v.push(format!("/pantstack/{}/{}-*", self.project, self.base));
        }
        v
    }

    /// SSM parameter name patterns (without the leading `/`) of the scope.
    pub fn ssm_scopes(&self) -> Vec<String> {
        if self.previews() {
            vec![format!("{}/{}-*", self.project, self.base)]
        } else {
            vec![format!("{}/{}/*", self.project, self.base)]
        }
    }

    /// A role (or managed policy) of the foundation itself (`ci`, `deploy`, ...), as
    /// an `Fn::Sub` string ending in `-${AWS::Region}`: IAM names are account-wide,
    /// so the same environment deployed in a second region (disaster recovery) must
    /// not collide. 64 bytes at most with the longest region.
    pub fn base_role(&self, rest: &str) -> String {
        regional(&format!("{}-{rest}", self.base_prefix()), 64)
    }

    pub fn shared_stack(&self) -> String {
        format!("{}-shared", self.project)
    }

    pub fn foundation_stack(&self) -> String {
        format!("{}-foundation", self.base_prefix())
    }

    pub fn service_stack(&self, service: &str) -> String {
        format!("{}-{service}", self.prefix())
    }

    /// The environment's shared load balancer (`network.load_balancer: shared`).
    pub fn lb_stack(&self) -> String {
        format!("{}-load-balancer", self.prefix())
    }

    /// An export of the shared load balancer's stack (per environment: each
    /// preview has its own).
    pub fn lb_export(&self, what: &str) -> String {
        format!("{}-lb-{what}", self.prefix())
    }

    /// The rules of every `calls:` edge (synth's `calls.rs`); `service-connect` is
    /// not a service name (reserved), so no service stack takes it.
    pub fn calls_stack(&self) -> String {
        format!("{}-service-connect", self.prefix())
    }

    pub fn replica_stack(&self, service: &str) -> String {
        format!("{}-{service}-replica", self.prefix())
    }

    /// Export of the foundation stack that service stacks import.
    pub fn export(&self, what: &str) -> String {
        format!("{}-{what}", self.base_prefix())
    }

    pub fn shared_export(&self, what: &str) -> String {
        format!("{}-shared-{what}", self.project)
    }

    /// An IAM role name (64 bytes at most with the longest region), as an
    /// `Fn::Sub` string ending in `-${AWS::Region}` (see `base_role`).
    pub fn role(&self, rest: &str) -> String {
        regional(&format!("{}-{rest}", self.prefix()), 64)
    }

    /// A CloudWatch dashboard name (account-wide), as an `Fn::Sub` string.
    pub fn dashboard(&self, service: &str) -> String {
        regional(&format!("{}-{service}", self.prefix()), 255)
    }

    /// SQS queue name (80 bytes at most, `.fifo` included).
    pub fn queue(&self, service: &str, queue: &str, dlq: bool, fifo: bool) -> String {
        let suffix = match (dlq, fifo) {
            (true, true) => "-dlq.fifo",
            (true, false) => "-dlq",
            (false, true) => ".fifo",
            (false, false) => "",
        };
        let base = fit(
            &format!("{}-{service}-{queue}", self.prefix()),
            80 - suffix.len(),
        );
        format!("{base}{suffix}")
    }

    pub fn log_group(&self, service: &str) -> String {
        format!("/pantstack/{}/{}/{service}", self.project, self.env)
    }

    /// The CloudWatch namespace of a service's custom metrics: its task role may
    /// put metrics into this namespace only (`cloudwatch:namespace`). Inside the
    /// scope that `ssm_scopes` describes, so the permissions boundary allows it.
    pub fn metrics_namespace(&self, service: &str) -> String {
        format!("{}/{}/{service}", self.project, self.env)
    }

    /// SSM path of a service's parameters (no trailing slash).
    pub fn ssm_path(&self, service: &str) -> String {
        format!("/{}/{}/{service}", self.project, self.env)
    }

    pub fn kms_alias(&self) -> String {
        format!("alias/{}/{}", self.project, self.base)
    }

    /// The replica key of a service's buckets, in the replica region.
    pub fn replica_kms_alias(&self, service: &str) -> String {
        format!("alias/{}/{}/{service}-replica", self.project, self.env)
    }

    /// ECS cluster name (255) and service names (255): never shortened in practice.
    pub fn cluster(&self, service: &str) -> String {
        format!("{}-{service}", self.prefix())
    }

    /// ALB and target group names: 32 bytes at most, no leading/trailing `-`.
    pub fn elb(&self, service: &str, suffix: &str) -> String {
        fit(&format!("{}-{service}{suffix}", self.prefix()), 32)
    }

    /// What every ALB and target group name of the environment starts with (the
    /// kept head of `fit(.., 32)`), for IAM resource patterns.
    pub fn elb_pattern(&self) -> String {
        let p = format!("{}-", self.base_prefix());
        p[..p.len().min(23)].to_string()
    }

    pub fn alarm(&self, service: &str, what: &str) -> String {
        format!("{}-{service}-{what}", self.prefix())
    }

    /// A replica bucket's name: known before either stack exists, because the source
    /// bucket's replication rule names it. Global, so it ends with the account id.
    pub fn replica_bucket(&self, service: &str, bucket: &str) -> String {
        // 63 bytes at most; `-` + 12-digit account id is appended in the template.
        fit(&format!("{}-{service}-{bucket}-dr", self.prefix()), 50)
    }
}

/// The URL of queue `name` of `account` at `endpoint` (`scheme://host[:port]`, or
/// an `Fn::Sub` string such as `https://sqs.${AWS::Region}.${AWS::URLSuffix}`):
/// `{endpoint}/{account}/{name}`.
pub fn queue_url(endpoint: &str, account: &str, name: &str) -> String {
    format!("{endpoint}/{account}/{name}")
}

/// The queue name a `QueueUrl` names: `[scheme://host[:port]]/<account>/<name>`,
/// exactly (no query, fragment or further segments), else None.
pub fn queue_of_url(url: &str) -> Option<&str> {
    let path = match url.split_once("://") {
        Some((_, rest)) => &rest[rest.find('/')?..],
        None => url,
    };
    let rest = path.strip_prefix('/')?;
    let (account, name) = rest.split_once('/')?;
    let valid = !account.is_empty()
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    valid.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_keep_prefix_and_differ() {
        let a = fit(&"a".repeat(70), 64);
        let b = fit(&format!("{}b", "a".repeat(69)), 64);
        assert!(a.len() <= 64 && b.len() <= 64);
        assert!(a.starts_with("aaaa"));
        assert_ne!(a, b);
        assert_eq!(fit("short", 64), "short");
    }

    #[test]
    fn account_wide_names_carry_the_region_and_fit() {
        let n = Names {
            project: &"p".repeat(20),
            env: &"e".repeat(16),
            base: &"e".repeat(16),
        };
        for name in [n.role(&"s".repeat(30)), n.base_role("boundary")] {
            assert!(name.ends_with("-${AWS::Region}"), "{name}");
            let real = name.replace("${AWS::Region}", "ap-southeast-3");
            assert!(real.len() <= 64, "{real}");
        }
        let short = Names {
            project: "shop",
            env: "test",
            base: "test",
        };
        assert_eq!(short.role("api-task"), "shop-test-api-task-${AWS::Region}");
        assert_eq!(short.dashboard("api"), "shop-test-api-${AWS::Region}");
    }

    #[test]
    fn queue_names_fit() {
        let n = Names {
            project: &"p".repeat(20),
            env: &"e".repeat(16),
            base: &"e".repeat(16),
        };
        let q = n.queue(&"s".repeat(24), &"q".repeat(40), true, true);
        assert!(q.len() <= 80, "{q}");
        assert!(q.ends_with("-dlq.fifo"));
        let elb = n.elb(&"s".repeat(24), "-tg");
        assert!(elb.len() <= 32 && !elb.ends_with('-'));
    }

    #[test]
    fn names_of_an_environment_use_its_foundation() {
        let n = Names::new("shop", "preview-7");
        assert_eq!(n.base, crate::foundation::PREVIEW_STACK);
        assert_eq!(n.service_stack("api"), "shop-preview-7-api");
        assert_eq!(Names::new("shop", "test").base, "test");
    }

    #[test]
    fn queue_urls_round_trip() {
        let url = queue_url("http://127.0.0.1:9", "000000000000", "q-1");
        assert_eq!(url, "http://127.0.0.1:9/000000000000/q-1");
        assert_eq!(queue_of_url(&url), Some("q-1"));
        assert_eq!(queue_of_url("/000000000000/q.fifo"), Some("q.fifo"));
        for bad in [
            "http://h/000000000000/billing?x=/000000000000/api",
            "http://h/000000000000/billing#/000000000000/api",
            "http://h/000000000000/api?b",
            "http://h/000000000000/a/b",
            "http://h/000000000000/",
            "http://h/acct/q",
            "http://h",
            "q",
        ] {
            assert_eq!(queue_of_url(bad), None, "{bad}");
        }
    }
}
