//! `fakecloud-adapter`: fakecloud 0.51.0 answering the way AWS does where the aws
//! target meets its deviations (the library's `DEVIATIONS`).
//!
//! ```text
//! fakecloud-adapter [--listen 127.0.0.1:4567] [--upstream 4566]
//!     serves the adapter; point AWS_ENDPOINT_URL at --listen
//! fakecloud-adapter urls [--upstream 4566]
//!     each load balancer's DNS name and the loopback URL that serves it
//! fakecloud-adapter deviations
//!     what differs from AWS, and what is adapted
//! ```

#![forbid(unsafe_code)]

use std::net::{SocketAddr, TcpListener};
use std::process::ExitCode;

const USAGE: &str = "usage:
  fakecloud-adapter [--listen 127.0.0.1:4567] [--upstream 4566]   serve; AWS_ENDPOINT_URL=http://<listen>
  fakecloud-adapter urls [--upstream 4566]                        each ALB's DNS name → its loopback URL
  fakecloud-adapter deviations                                    what differs from AWS, and what is adapted";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 4567));
    let mut upstream: u16 = 4566;
    let mut verb = "serve";
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
            pantstack_fakecloud_adapter::serve(l, upstream);
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
