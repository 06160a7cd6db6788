//! Arguments of the commands that watch the local cloud: `logs`, `trace`,
//! `spot-interrupt`, `metrics`, `activity`, `alarms`.

use super::TargetArgs;
use clap::Args;

#[derive(Args, Debug)]
pub struct MetricsArgs {
    /// Service (its units) or one role (`api-worker`); default: every service
    pub service: Option<String>,
    /// Only this metric (`CPUUtilization`, `RequestCount`, `TargetResponseTime`, a custom one ...)
    #[arg(long)]
    pub metric: Option<String>,
    /// How far back: `15m` (default), `2h`, `90s`
    #[arg(long, default_value = "15m")]
    pub since: String,
    /// Period of each value: 1, 5, 10, 20, 30 s or a multiple of 60 s (default: the service's local.metrics.period)
    #[arg(long)]
    pub period: Option<String>,
    /// Statistic: Average, Sum, Minimum, Maximum, SampleCount or a percentile like p99 (default: the metric's usual one)
    #[arg(long)]
    pub stat: Option<String>,
    /// Environment (default: the one running, if only one is)
    #[arg(long)]
    pub env: Option<String>,
}

#[derive(Args, Debug)]
pub struct ActivityArgs {
    /// Service (its units) or one role (`api-worker`); default: every service
    pub service: Option<String>,
    /// Environment (default: the one running, if only one is)
    #[arg(long)]
    pub env: Option<String>,
}

#[derive(Args, Debug)]
pub struct AlarmsArgs {
    /// Service (its units) or one role; default: every service
    pub service: Option<String>,
    /// Show each alarm's state history too
    #[arg(long)]
    pub history: bool,
    /// Environment (default: the one running, if only one is)
    #[arg(long)]
    pub env: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Service (every role) or one role (`api-worker`); every service when left out
    pub service: Option<String>,
    /// Keep printing new lines, of tasks started later too, until Ctrl-C
    #[arg(short, long, conflicts_with = "until")]
    pub follow: bool,
    /// Only lines at or after this: a duration back from now (30s, 10m, 2h, 1d) or an RFC 3339 time
    #[arg(long)]
    pub since: Option<String>,
    /// Only lines before this: a duration back from now or an RFC 3339 time
    #[arg(long)]
    pub until: Option<String>,
    /// Only lines whose message contains PATTERN (a plain substring, not a regular expression)
    #[arg(long, value_name = "PATTERN")]
    pub grep: Option<String>,
    /// --grep ignores case
    #[arg(short = 'i', long, requires = "grep")]
    pub ignore_case: bool,
    /// Environment (default: the one running, if only one is)
    #[arg(long)]
    pub env: Option<String>,
    #[command(flatten)]
    pub target: TargetArgs,
}

#[derive(Args, Debug)]
pub struct TraceArgs {
    /// A request id (`X-Request-Id`) or trace id (`X-Amzn-Trace-Id`, `Root=1-…` or its `1-…` part)
    pub id: String,
    /// Environment (default: the one running, or the only one with logs)
    #[arg(long)]
    pub env: Option<String>,
}

#[derive(Args, Debug)]
pub struct SpotInterruptArgs {
    /// Service (its units) or one role (`api-worker`)
    pub service: String,
    /// This task (it must be on FARGATE_SPOT); default: the newest Spot task
    #[arg(long, conflicts_with = "all")]
    pub task: Option<u64>,
    /// Every FARGATE_SPOT task of the service at once
    #[arg(long)]
    pub all: bool,
    /// Environment (default: the one running, if only one is)
    #[arg(long)]
    pub env: Option<String>,
}
