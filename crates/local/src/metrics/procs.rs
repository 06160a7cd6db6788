//! What the tasks use, read from `/proc` in one pass: CPU time and resident
//! memory summed per process group (a process task is its own group; a
//! container's processes are in the group of its init process) and per
//! container (processes whose `/proc/PID/cgroup` names the container's id).
//!
//! Memory is the sum of resident set sizes, so pages shared between processes
//! of one task count more than once (ECS reports the cgroup's usage, which
//! counts them once): an upper bound.

use std::collections::HashMap;

/// What a task has used: CPU time since it started (clock ticks) and memory now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu_ticks: u64,
    pub rss_bytes: u64,
    /// Processes counted.
    pub processes: u32,
}

impl Usage {
    fn add(&mut self, cpu_ticks: u64, rss_bytes: u64) {
        self.cpu_ticks += cpu_ticks;
        self.rss_bytes += rss_bytes;
        self.processes += 1;
    }
}

/// One process's line of `/proc/PID/stat`: (process group, utime + stime +
/// cutime + cstime in ticks, resident pages). `None` for a line not of that form.
pub fn parse_stat(line: &str) -> Option<(u32, u64, u64)> {
    // The command name (field 2) is in parentheses and may hold anything,
    // spaces and parentheses included: the fields after it follow the last `)`.
    let rest = &line[line.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // f[0] is field 3 (state): field n is f[n - 3].
    let pgrp = f.get(2)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // The time of its children that have ended and were waited for: a task that
    // runs a short-lived process per job has used that CPU too.
    let cutime: i64 = f.get(13)?.parse().ok()?;
    let cstime: i64 = f.get(14)?.parse().ok()?;
    let rss: i64 = f.get(21)?.parse().ok()?;
    let children = (cutime.max(0) + cstime.max(0)) as u64;
    Some((pgrp, utime + stime + children, rss.max(0) as u64))
}

/// Sums the usage of every process in `groups` (by process group id) and in
/// `containers` (by container id in its cgroup path). Processes that end while
/// they are read are left out.
pub fn sample(
    groups: &[u32],
    containers: &[String],
) -> (HashMap<u32, Usage>, HashMap<String, Usage>) {
    let mut by_group: HashMap<u32, Usage> = HashMap::new();
    let mut by_container: HashMap<String, Usage> = HashMap::new();
    if groups.is_empty() && containers.is_empty() {
        return (by_group, by_container);
    }
    let page = rustix::param::page_size() as u64;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (by_group, by_container);
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((pgrp, ticks, pages)) = parse_stat(&stat) else {
            continue;
        };
        if groups.contains(&pgrp) {
            by_group.entry(pgrp).or_default().add(ticks, pages * page);
            continue;
        }
        if containers.is_empty() {
            continue;
        }
        let Ok(cgroup) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
            continue;
        };
        if let Some(c) = containers.iter().find(|c| cgroup.contains(c.as_str())) {
            by_container
                .entry(c.clone())
                .or_default()
                .add(ticks, pages * page);
        }
    }
    (by_group, by_container)
}

/// Clock ticks per second (`/proc` counts CPU time in them).
pub fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_after_the_command_name() {
        let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 17 5 0 0 20 0 1 0 123 1000000 250 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat(line), Some((4242, 22, 250)));
        let line = "7 (sh) S 1 7 7 0 -1 0 0 0 0 0 10 5 30 15 20 0 1 0 1 1 99";
        assert_eq!(parse_stat(line), Some((7, 60, 99)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1"), None);
    }

    #[test]
    fn counts_this_process_group() {
        let me = rustix::process::getpgrp().as_raw_nonzero().get() as u32;
        // Burn a little CPU so the count is not zero.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let (groups, containers) = sample(&[me], &[]);
        let u = groups.get(&me).copied().unwrap_or_default();
        assert!(u.processes >= 1, "{u:?}");
        assert!(u.rss_bytes > 1024 * 1024, "{u:?}");
        assert!(containers.is_empty());
    }
}
