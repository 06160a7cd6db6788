//! The local cloud's AWS endpoint on its own, for benchmarks: opens its state in DIR
//! and serves on 127.0.0.1:PORT (0: any), printing `port ACCESS SECRET` once ready.
//! Usage: bench-endpoint DIR PORT

#![forbid(unsafe_code)]

use pantstack_endpoint::{Config, Core, http};

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::sync::Arc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(port)) = (
        args.first(),
        args.get(1).and_then(|p| p.parse::<u16>().ok()),
    ) else {
        eprintln!("usage: bench-endpoint DIR PORT");
        std::process::exit(2);
    };
    // The endpoint runs on a thread of its own (`http::serve`); this runtime only
    // starts it and waits.
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
    let dir = std::path::PathBuf::from(dir);
    let core = match Core::open(&Config {
        dir: dir.join("aws"),
        key_file: dir.join("keys/bench.key"),
        region: "us-east-1".into(),
        principals: vec!["bench".into()],
        // As the supervisor reads it.
        policies: Default::default(),
        compact_min_bytes: std::env::var("PANTSTACK_COMPACT_MIN_BYTES")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(pantstack_endpoint::DEFAULT_COMPACT_MIN),
    }) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let creds = core.credentials("bench");
    if std::env::var_os("BENCH_JOURNAL_STATS").is_some() {
        let core = core.clone();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                let (groups, grouped, timeouts) = core.journal_stats();
                eprintln!(
                    "journal: {groups} groups, {grouped} submissions, {timeouts} waits timed out"
                );
            }
        });
    }
    rt.block_on(async {
        match http::serve(core, port).await {
            Ok(server) => {
                println!("{} {} {}", server.port, creds.access_key, creds.secret_key);
                std::future::pending::<()>().await;
            }
            Err(e) => {
                eprintln!("cannot serve: {e}");
                std::process::exit(1);
            }
        }
    });
}
