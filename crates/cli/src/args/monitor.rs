//! Arguments of the monitoring commands: `metrics`, `activity`, `alarms`.

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
