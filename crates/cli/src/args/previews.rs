//! Arguments of the commands for pull-request previews and CI: `preview`,
//! `changed`, `workflows`.

// clap prints these doc comments as `--help` text, where `<pr>` is a placeholder
// for the reader, not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct PreviewArgs {
    #[command(subcommand)]
    pub action: PreviewAction,
    /// AWS: a profile of ~/.aws/config
    #[arg(long, global = true)]
    pub profile: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum PreviewAction {
    /// Deploy (or update) the preview of a pull request
    Up {
        /// Pull request number
        #[arg(long)]
        pr: u64,
        /// Services to deploy (default: every service; every service when the preview is new)
        services: Vec<String>,
        /// At the cap (previews.max): destroy the preview idle the longest to make room
        #[arg(long)]
        replace_oldest: bool,
        /// Wait up to this long (`90s`, `15m`) for the previews' lock, then the preview's deploy lock
        #[arg(long, value_name = "DURATION")]
        lock_wait: Option<String>,
    },
    /// Mark the preview of a pull request active (a push that changed none of its services): gc judges its idle time from now
    Touch {
        /// Pull request number
        #[arg(long)]
        pr: u64,
        /// Wait up to this long (`90s`, `15m`) for the preview's deploy lock
        #[arg(long, value_name = "DURATION")]
        lock_wait: Option<String>,
    },
    /// Destroy the preview of a pull request: its stacks, buckets (with their data), images and parameters
    Down {
        /// Pull request number
        #[arg(long)]
        pr: u64,
        /// Destroy without asking (required without a terminal)
        #[arg(long)]
        yes: bool,
        /// Wait up to this long for the preview's deploy lock
        #[arg(long, value_name = "DURATION")]
        lock_wait: Option<String>,
    },
    /// List the previews: pull request, stacks, last change, when the TTL expires them
    List,
    /// Destroy the previews idle longer than previews.ttl
    Gc {
        /// Destroy without asking (required without a terminal)
        #[arg(long)]
        yes: bool,
        /// Only say which would be destroyed
        #[arg(long)]
        dry_run: bool,
        /// Wait up to this long (`90s`, `15m`) for each idle preview's deploy lock (default: a preview whose lock another run holds is kept)
        #[arg(long, value_name = "DURATION")]
        lock_wait: Option<String>,
    },
}

#[derive(Args, Debug)]
pub struct ChangedArgs {
    /// The commit (or branch) to compare with
    #[arg(
        long,
        required_unless_present = "deployed",
        conflicts_with = "deployed"
    )]
    pub base: Option<String>,
    /// AWS: compare each service with the commit its stack in --env runs (from its
    /// image tag); a service not deployed, or deployed from uncommitted changes, counts as changed
    #[arg(long, requires = "env")]
    pub deployed: bool,
    /// The environment whose deployed commits --deployed reads
    #[arg(long)]
    pub env: Option<String>,
    /// AWS: a profile of ~/.aws/config
    #[arg(long, requires = "deployed")]
    pub profile: Option<String>,
    /// The commit to compare (default: HEAD)
    #[arg(long)]
    pub head: Option<String>,
}

#[derive(Args, Debug)]
pub struct WorkflowsArgs {
    /// Where to write them (default: .github/workflows/ at the git repository's root)
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
    /// Compare instead of writing: exit 1 when a file differs or is missing
    #[arg(long)]
    pub check: bool,
    /// The shell line that installs pantstack on a runner
    #[arg(long, value_name = "COMMAND")]
    pub install: Option<String>,
}
