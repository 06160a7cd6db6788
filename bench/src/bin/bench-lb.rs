//! The local cloud's load balancer on its own, for benchmarks: listens on PORT and
//! balances over the given targets (round robin, health checks on `/`), no access log.
//! Usage: bench-lb PORT TARGET [TARGET...]

#![forbid(unsafe_code)]

use pantstack_lb::Balancer;
use pantstack_lb::balance::Algorithm;
use pantstack_lb::health::Thresholds;
use pantstack_lb::spec::{HttpSpec, Matcher};
use std::net::SocketAddr;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port = args.first().and_then(|p| p.parse::<u16>().ok());
    let targets: Vec<SocketAddr> = args.iter().skip(1).filter_map(|t| t.parse().ok()).collect();
    let (Some(port), false) = (port, targets.is_empty()) else {
        eprintln!("usage: bench-lb PORT TARGET [TARGET...]");
        std::process::exit(2);
    };
    let spec = HttpSpec {
        health_path: "/".into(),
        matcher: Matcher::parse("200"),
        interval_ms: 5000,
        timeout_ms: 2000,
        thresholds: Thresholds {
            healthy: 2,
            unhealthy: 2,
        },
        grace_ms: 0,
        deregistration_ms: 0,
        algorithm: Algorithm::RoundRobin,
        idle_timeout_ms: 60_000,
        rules: Vec::new(),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    rt.block_on(async move {
        let lb = match Balancer::start("bench", port, spec, None).await {
            Ok(lb) => lb,
            Err(e) => {
                eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
                std::process::exit(1);
            }
        };
        for (i, t) in targets.into_iter().enumerate() {
            lb.register(i as u64 + 1, t);
        }
        std::future::pending::<()>().await;
    });
}
