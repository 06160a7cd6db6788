//! The `pantstack` binary: parses arguments, dispatches, owns exit codes.
//! Wiring only; the work is in the `pantstack-manifest` and `pantstack-model` crates.

#![forbid(unsafe_code)]

// mimalloc: the local endpoint's journal thread frees what request threads allocate;
// glibc's malloc spent ~10 % of its CPU on that (bench/queue).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod args;
mod aws;
mod backup;
mod ci;
mod commands;
mod git;
mod local;
mod output;
mod preview;
mod scaffold;
mod ship;
mod synth;

use args::{Cli, Command, Target};
use clap::{CommandFactory, Parser};
use output::Out;
use std::process::ExitCode;

/// A failure that ends the command with an exit code (see `args::EXIT_CODES`).
#[derive(Debug)]
pub enum Failure {
    /// Diagnostics were printed; exit 1.
    Invalid,
    /// Cannot resolve (unmapped branch, unknown service, git unavailable); exit 3.
    Resolve(String),
    /// I/O; exit 4.
    Io(String),
    /// Bad arguments beyond what clap checks; exit 2.
    Usage(String),
    /// An operation failed and said why already (an AWS deployment); exit 1.
    Failed,
}

impl From<pantstack_local::client::Refused> for Failure {
    fn from(r: pantstack_local::client::Refused) -> Failure {
        use pantstack_local::client::Refused;
        match r {
            Refused::Usage(m) => Failure::Usage(m),
            Refused::Unresolved(m) => Failure::Resolve(m),
            Refused::Io(m) => Failure::Io(m),
        }
    }
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Invalid | Failure::Failed => 1,
            Failure::Usage(_) => 2,
            Failure::Resolve(_) => 3,
            Failure::Io(_) => 4,
        }
    }
}

/// Output into a pipe whose reader has gone (`pantstack status | head -1`) ends
/// the command quietly, as `ls` or `git` end: Rust ignores SIGPIPE, so `println!`
/// would panic on EPIPE and exit 101 with a panic message.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to std") && text.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

/// Parses the command line. A `secrets` command clap refuses is reported without
/// the words it refused: a value typed after the secret's name (`secrets set api
/// TOKEN s3cr3t`) must not reach the terminal, the shell's scrollback or a CI log.
fn parse() -> Cli {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let secrets = argv.iter().skip(1).any(|a| a == "secrets");
            let shown = matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                    | ErrorKind::MissingRequiredArgument
                    | ErrorKind::MissingSubcommand
            );
            if secrets && !shown {
                eprintln!(
                    "error: `pantstack secrets`: unexpected or invalid argument (not repeated here: it may be a secret's value)\n\n\
                     A secret's value is never taken from the command line: pipe it on standard input\n\
                     (`printf %s \"$TOKEN\" | pantstack secrets set SERVICE NAME`) or type it at the prompt.\n\n\
                     For more information, try 'pantstack secrets --help'."
                );
                std::process::exit(2);
            }
            e.exit()
        }
    }
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = parse();
    let out = Out::new(cli.global.format, cli.global.color);
    let result = match cli.command {
        Command::Check => commands::check(&cli.global, &out),
        Command::Env(a) => commands::env(&cli.global, &out, &a),
        Command::Config(a) => commands::config(&cli.global, &out, &a),
        Command::Tag(a) => commands::tag(&cli.global, &out, &a),
        Command::Synth(a) => synth::synth(&cli.global, &out, &a),
        Command::Bootstrap(a) => ship::bootstrap(&cli.global, &out, &a),
        Command::Diff(a) => ship::diff(&cli.global, &out, &a),
        // `--supervise` is the local cloud's own supervisor: local, always.
        Command::Up(a) => match ship::target(
            if a.supervise { Some(Target::Local) } else { a.target.target },
            &cli.global,
            a.env.as_deref(),
        ) {
            Ok(Target::Aws) => ship::deploy_services(
                &cli.global,
                &out,
                a.env.as_deref(),
                a.services.clone(),
                &a.target,
                false,
                a.lock_wait.as_deref(),
            ),
            Ok(Target::Local) if a.lock_wait.is_some() => Err(ship::lock_wait_is_aws()),
            Ok(Target::Local) => {
                ship::local_only(&a.target).and_then(|_| local::up(&cli.global, &out, &a))
            }
            Err(e) => Err(e),
        },
        Command::Down(a) => match ship::target(a.target.target, &cli.global, a.env.as_deref()) {
            Ok(Target::Aws) => ship::down(&cli.global, &out, &a),
            Ok(Target::Local) if a.lock_wait.is_some() => Err(ship::lock_wait_is_aws()),
            Ok(Target::Local) if a.yes || a.allow_prod || a.images || a.parameters || a.buckets => {
                Err(Failure::Usage(
                    "--yes, --allow-prod, --images, --parameters and --buckets are for destroying an environment on AWS: add --target aws".into(),
                ))
            }
            Ok(Target::Local) => ship::local_only(&a.target)
                .and_then(|_| local::down(&cli.global, &out, a.env.as_deref())),
            Err(e) => Err(e),
        },
        Command::Status(a) => match ship::target(a.target.target, &cli.global, a.env.as_deref()) {
            Ok(Target::Aws) => ship::status(&cli.global, &out, a.env.as_deref(), &a.target),
            Ok(Target::Local) => {
                ship::local_only(&a.target).and_then(|_| local::status(&cli.global, &out, &a))
            }
            Err(e) => Err(e),
        },
        Command::Deploy(a) => match ship::target(a.target.target, &cli.global, a.env.as_deref()) {
            Ok(Target::Aws) => ship::deploy(&cli.global, &out, &a),
            Ok(Target::Local) if a.prune => Err(Failure::Usage(
                "--prune deletes stacks of an environment on AWS: add --target aws".into(),
            )),
            Ok(Target::Local) if a.lock_wait.is_some() => Err(ship::lock_wait_is_aws()),
            Ok(Target::Local) => {
                ship::local_only(&a.target).and_then(|_| local::deploy(&cli.global, &out, &a))
            }
            Err(e) => Err(e),
        },
        Command::Rollback(a) => local::rollback(&cli.global, &out, &a),
        Command::Scale(a) => local::scale(&cli.global, &out, &a),
        Command::Logs(a) => match ship::target(a.target.target, &cli.global, a.env.as_deref()) {
            Ok(Target::Aws) if a.grep.is_some() || a.until.is_some() => Err(Failure::Usage(
                "--grep and --until read the local cloud's logs; on AWS use CloudWatch Logs Insights (or leave them out)".into(),
            )),
            Ok(Target::Aws) => ship::logs(&cli.global, &out, &a),
            Ok(Target::Local) => {
                ship::local_only(&a.target).and_then(|_| local::logs(&cli.global, &out, &a))
            }
            Err(e) => Err(e),
        },
        Command::Exec(a) => local::exec(&cli.global, &out, &a),
        Command::Trace(a) => local::trace(&cli.global, &out, &a),
        Command::Metrics(a) => local::metrics(&cli.global, &out, &a),
        Command::Activity(a) => local::activity(&cli.global, &out, &a),
        Command::Alarms(a) => local::alarms(&cli.global, &out, &a),
        Command::SpotInterrupt(a) => local::spot_interrupt(&cli.global, &out, &a),
        Command::Deployments(a) => local::deployments(&cli.global, &out, &a),
        Command::AwsEnv(a) => aws::aws_env(&cli.global, &out, &a),
        Command::Unlock(a) if a.previews => ship::unlock(&cli.global, &out, &a),
        Command::Unlock(a) => match ship::target(a.target.target, &cli.global, a.env.as_deref()) {
            Ok(Target::Aws) => ship::unlock(&cli.global, &out, &a),
            Ok(Target::Local) => Err(Failure::Usage(
                "the deploy lock guards an environment on AWS (the local cloud has none): add --target aws".into(),
            )),
            Err(e) => Err(e),
        },
        Command::Secrets(a) => match ship::target(a.target, &cli.global, a.env.as_deref()) {
            Ok(Target::Aws) => ship::secrets(&cli.global, &out, &a),
            Ok(Target::Local) if a.profile.is_some() || a.region.is_some() => Err(Failure::Usage(
                "--profile and --region choose an AWS account and region: add --target aws".into(),
            )),
            Ok(Target::Local) => aws::secrets(&cli.global, &out, &a),
            Err(e) => Err(e),
        },
        Command::Backup(a) => backup::backup(&cli.global, &out, &a),
        Command::Restore(a) => backup::restore(&cli.global, &out, &a),
        Command::Quotas(a) => synth::quotas(&cli.global, &out, &a),
        Command::Cost(a) => synth::cost(&cli.global, &out, &a),
        Command::Preview(a) => preview::preview(&cli.global, &out, &a),
        Command::Changed(a) => ci::changed(&cli.global, &out, &a),
        Command::Workflows(a) => ci::workflows(&cli.global, &out, &a),
        Command::Init(a) => scaffold::init(&out, &a),
        Command::New(a) => scaffold::new_service(&cli.global, &out, &a),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "pantstack", &mut script);
            use std::io::Write;
            match std::io::stdout().write_all(&script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(Failure::Io(format!("cannot write the completions: {e}")))
                }
                _ => Ok(()),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            match &f {
                Failure::Invalid | Failure::Failed => {}
                Failure::Resolve(m) | Failure::Io(m) | Failure::Usage(m) => {
                    let label = if out.color {
                        "\x1b[1;31merror\x1b[0m"
                    } else {
                        "error"
                    };
                    if out.json() {
                        let v = serde_json::json!({ "error": m, "exit_code": f.code() });
                        println!("{v}");
                    } else {
                        eprintln!("{label}: {m}");
                    }
                }
            }
            ExitCode::from(f.code())
        }
    }
}
