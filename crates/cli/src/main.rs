//! The `pantstack` binary: parses arguments, dispatches, owns exit codes.
//! Wiring only; the work is in the `pantstack-manifest` and `pantstack-model` crates.

// mimalloc: the local endpoint's journal thread frees what request threads allocate;
// glibc's malloc spent ~10 % of its CPU on that (bench/queue).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod args;
mod aws;
mod commands;
mod git;
mod local;
mod output;
mod scaffold;
mod synth;

use args::{Cli, Command};
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
}

impl Failure {
    fn code(&self) -> u8 {
        match self {
            Failure::Invalid => 1,
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

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    let out = Out::new(cli.global.format, cli.global.color);
    let result = match cli.command {
        Command::Check => commands::check(&cli.global, &out),
        Command::Env(a) => commands::env(&cli.global, &out, &a),
        Command::Config(a) => commands::config(&cli.global, &out, &a),
        Command::Tag(a) => commands::tag(&cli.global, &out, &a),
        Command::Synth(a) => synth::synth(&cli.global, &out, &a),
        Command::Up(a) => local::up(&cli.global, &out, &a),
        Command::Down(a) => local::down(&cli.global, &out, &a),
        Command::Status(a) => local::status(&cli.global, &out, &a),
        Command::Deploy(a) => local::deploy(&cli.global, &out, &a),
        Command::Rollback(a) => local::rollback(&cli.global, &out, &a),
        Command::Scale(a) => local::scale(&cli.global, &out, &a),
        Command::Logs(a) => local::logs(&cli.global, &out, &a),
        Command::Exec(a) => local::exec(&cli.global, &out, &a),
        Command::Deployments(a) => local::deployments(&cli.global, &out, &a),
        Command::AwsEnv(a) => aws::aws_env(&cli.global, &out, &a),
        Command::Secrets(a) => aws::secrets(&cli.global, &out, &a),
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
                Failure::Invalid => {}
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
