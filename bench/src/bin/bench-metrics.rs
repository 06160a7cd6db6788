//! What the local cloud's metrics collection costs: the work of one metrics
//! period at TASKS tasks (a `/proc` pass over their process groups, the periods
//! of two units of TASKS/2 tasks each, the queues' depths, and the journaled put
//! of every datapoint into the endpoint), repeated `ROUNDS` times back to back;
//! prints the CPU time of one period and what that is of one core at a 10 s
//! (the default `local.metrics.period`) and a 1 s period, as one JSON line.
//!
//! The tasks are `sleep` processes, each in a process group of its own as the
//! supervisor starts them. Usage: `bench-metrics [TASKS] [ROUNDS]`

#![forbid(unsafe_code)]

use pantstack_local::metrics::{self, TaskInput, UnitInput, UnitMemory};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::Instant;

/// CPU time of this process so far, seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| f.get(*i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    ticks as f64 / metrics::procs::ticks_per_second() as f64
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let tasks = args.first().copied().unwrap_or(20).max(2) as usize;
    let rounds = args.get(1).copied().unwrap_or(300).max(10);
    let dir = std::env::temp_dir().join(format!("bench-metrics-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let core = match pantstack_endpoint::Core::open(&pantstack_endpoint::Config {
        dir: dir.join("aws"),
        key_file: dir.join("key"),
        region: "us-east-1".into(),
        principals: vec!["api".into()],
        policies: Default::default(),
        compact_min_bytes: pantstack_endpoint::DEFAULT_COMPACT_MIN,
    }) {
        Ok(c) => std::sync::Arc::new(c),
        Err(e) => {
            eprintln!("cannot open the endpoint state: {e}");
            std::process::exit(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("no runtime: {e}");
            std::process::exit(1);
        }
    };
    for q in ["shop-test-api-jobs", "shop-test-api-jobs-dlq"] {
        if let Err(e) = rt.block_on(core.ensure_queue(q, &[])) {
            eprintln!("cannot create queue {q}: {e}");
            std::process::exit(1);
        }
    }
    let mut children: Vec<Child> = Vec::new();
    for _ in 0..tasks {
        match Command::new("sleep").arg("3600").process_group(0).spawn() {
            Ok(c) => children.push(c),
            Err(e) => {
                eprintln!("cannot start sleep: {e}");
                std::process::exit(1);
            }
        }
    }
    let groups: Vec<u32> = children.iter().map(Child::id).collect();
    let ticks = metrics::procs::ticks_per_second();
    let mut mems = [UnitMemory::default(), UnitMemory::default()];
    let mut one_period = || {
        let (by_group, _) = metrics::procs::sample(&groups, &[]);
        let now = pantstack_endpoint::now_ms();
        let mut data = Vec::new();
        for (u, mem) in mems.iter_mut().enumerate() {
            let half = groups.len() / 2;
            let mine = &groups[u * half..(u + 1) * half];
            let input = UnitInput {
                cluster: "shop-test-api".into(),
                unit: if u == 0 {
                    "api".into()
                } else {
                    "api-worker".into()
                },
                cpu_units: 256,
                memory_mib: 512,
                desired: mine.len() as u32,
                tasks: mine
                    .iter()
                    .enumerate()
                    .map(|(i, g)| TaskInput {
                        id: (u * half + i) as u64,
                        usage: by_group.get(g).copied(),
                    })
                    .collect(),
                lb: None,
            };
            data.extend(metrics::unit_period(&input, mem, now, ticks).0);
        }
        data.extend(metrics::queue_period(&core.queue_metrics(), now));
        let n = data.len();
        if let Err(e) = rt.block_on(core.put_builtin_metrics(data)) {
            eprintln!("put: {}", e.message);
            std::process::exit(1);
        }
        n
    };
    // Warm up (the first period has no CPU values).
    one_period();
    let wall = Instant::now();
    let before = cpu_seconds();
    let mut datapoints = 0;
    for _ in 0..rounds {
        datapoints = one_period();
    }
    let cpu = cpu_seconds() - before;
    let wall = wall.elapsed().as_secs_f64();
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    let per_period_ms = cpu / rounds as f64 * 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "tasks": tasks,
            "rounds": rounds,
            "datapoints_per_period": datapoints,
            "cpu_ms_per_period": per_period_ms,
            "wall_ms_per_period": wall / rounds as f64 * 1000.0,
            "core_percent_at_10s": per_period_ms / 10_000.0 * 100.0,
            "core_percent_at_1s": per_period_ms / 1_000.0 * 100.0,
        })
    );
}
