//! `fakecloud-adapter`: fakecloud 0.51.0 answering the way AWS does where the aws
//! target meets its deviations (the library's `DEVIATIONS`).
//!
//! ```text
//! fakecloud-adapter [--listen 127.0.0.1:4567] [--upstream 4566] [--record FILE]
//!     serves the adapter; point AWS_ENDPOINT_URL at --listen; --record appends
//!     each AWS API call (service, operation, parameters; never values) to FILE
//! fakecloud-adapter urls [--upstream 4566]
//!     each load balancer's DNS name and the loopback URL that serves it
//! fakecloud-adapter deviations
//!     what differs from AWS, and what is adapted
//! ```

#![forbid(unsafe_code)]

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

const USAGE: &str = "usage:
  fakecloud-adapter [--listen 127.0.0.1:4567] [--upstream 4566] [--record FILE]
                                                                  serve; AWS_ENDPOINT_URL=http://<listen>;
                                                                  each API call appended to FILE as a JSON line
  fakecloud-adapter urls [--upstream 4566]                        each ALB's DNS name → its loopback URL
  fakecloud-adapter deviations                                    what differs from AWS, and what is adapted";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 4567));
    let mut upstream: u16 = 4566;
    let mut verb = "serve";
    let mut record: Option<std::path::PathBuf> = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        let value = args.get(i + 1).map(String::as_str);
        match (a, value) {
            ("urls" | "deviations", _) if i == 0 => {
                verb = if a == "urls" { "urls" } else { "deviations" }
            }
            ("--listen", Some(v)) => match v.parse::<SocketAddr>() {
                Ok(addr) if addr.ip().is_loopback() => {
                    listen = addr;
                    i += 1;
                }
                _ => {
                    return usage(&format!(
                        "--listen {v}: a loopback address and port, like 127.0.0.1:4567"
                    ));
                }
            },
            ("--upstream", Some(v)) => {
                match v.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()) {
                    Some(p) => {
                        upstream = p;
                        i += 1;
                    }
                    None => {
                        return usage(&format!(
                            "--upstream {v}: fakecloud's port on 127.0.0.1, like 4566"
                        ));
                    }
                }
            }
            ("--record", Some(v)) => {
                record = Some(v.into());
                i += 1;
            }
            ("-h" | "--help", _) => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => return usage(&format!("unexpected argument `{a}`")),
        }
        i += 1;
    }
    match verb {
        "deviations" => {
            for (what, how) in pantstack_fakecloud_adapter::DEVIATIONS {
                println!("- {what}\n  {how}\n");
            }
            ExitCode::SUCCESS
        }
        "urls" => {
            let lbs = pantstack_fakecloud_adapter::load_balancers(upstream);
            if lbs.is_empty() {
                eprintln!(
                    "no load balancer at fakecloud on 127.0.0.1:{upstream} (is it running, and deployed?)"
                );
                return ExitCode::FAILURE;
            }
            for (dns, port) in lbs {
                println!("http://{dns} → http://127.0.0.1:{port}");
            }
            ExitCode::SUCCESS
        }
        _ => {
            let l = match TcpListener::bind(listen) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: cannot listen on {listen}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let at = l.local_addr().unwrap_or(listen);
            eprintln!(
                "fakecloud-adapter: http://{at} → fakecloud on 127.0.0.1:{upstream}\nexport AWS_ENDPOINT_URL=http://{at}"
            );
            let recorder = match record.as_deref().map(|p| {
                pantstack_fakecloud_adapter::record::Recorder::new(Some(p))
                    .map_err(|e| format!("--record {}: {e}", p.display()))
            }) {
                None => None,
                Some(Ok(r)) => Some(std::sync::Arc::new(r)),
                Some(Err(e)) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            pantstack_fakecloud_adapter::serve_recording(l, upstream, recorder);
            loop {
                std::thread::park();
            }
        }
    }
}

fn usage(why: &str) -> ExitCode {
    eprintln!("error: {why}\n{USAGE}");
    ExitCode::from(2)
}
