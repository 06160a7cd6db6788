//! What one load balancer is told: its health check, its target-group settings and
//! its listener rules (the local cloud derives them from the model).

use crate::balance::Algorithm;
use crate::health::Thresholds;

/// An HTTP status matcher: `200`, `200,204`, `200-299`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Matcher(Vec<(u16, u16)>);

impl Matcher {
    pub fn parse(s: &str) -> Matcher {
        let mut v = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            if let (Ok(a), Ok(b)) = (a.trim().parse(), b.trim().parse()) {
                v.push((a, b));
            }
        }
        if v.is_empty() {
            v.push((200, 200));
        }
        Matcher(v)
    }

    pub fn matches(&self, code: u16) -> bool {
        self.0.iter().any(|(a, b)| (*a..=*b).contains(&code))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub path: Option<String>,
    pub host: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpSpec {
    pub health_path: String,
    pub matcher: Matcher,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub thresholds: Thresholds,
    pub grace_ms: u64,
    pub deregistration_ms: u64,
    pub algorithm: Algorithm,
    pub idle_timeout_ms: u64,
    pub rules: Vec<Rule>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers() {
        let m = Matcher::parse("200-299");
        assert!(m.matches(204) && !m.matches(301));
        let m = Matcher::parse("200,302");
        assert!(m.matches(302) && !m.matches(301));
        assert!(Matcher::parse("200").matches(200));
    }
}
