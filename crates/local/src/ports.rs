//! Load-balancer ports: stable across restarts and chosen outside the kernel's
//! ephemeral range, so that no outgoing connection of another program takes one
//! between two `up`s; and when a port is taken, who holds it.

use std::net::TcpListener;

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`).
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().filter_map(|w| w.parse::<u16>().ok());
            Some((it.next()?, it.next()?))
        })
        .unwrap_or((32768, 60999))
}

/// The range stable ports are drawn from: below the ephemeral range.
pub fn stable_range() -> (u16, u16) {
    let (eph_lo, _) = ephemeral_range();
    let hi = eph_lo.min(30000);
    if hi > 20100 {
        (20000, hi)
    } else {
        (10000.min(hi.saturating_sub(100)).max(1024), hi)
    }
}

/// A free port for `key` (project/environment/unit): the same one each time while
/// it is free, from [`stable_range`]; `None` if none of the range is free.
pub fn stable_port(key: &str) -> Option<u16> {
    let (lo, hi) = stable_range();
    let span = u32::from(hi.saturating_sub(lo)).max(1);
    // FNV-1a: stable across builds and platforms (std's hasher is not).
    let mut h: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (0..span.min(2048))
        .map(|i| lo + ((h.wrapping_add(i)) % span) as u16)
        .find(|&p| TcpListener::bind(("127.0.0.1", p)).is_ok())
}

/// Who listens on a TCP port of this machine: `"nginx (pid 812)"`, as far as
/// /proc tells this user (another user's processes are not readable).
pub fn holder(port: u16) -> Option<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEX_IP:HEX_PORT, st 0A is LISTEN, inode is field 9.
            let (Some(local), Some(st), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            let p = local
                .rsplit_once(':')
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if p == Some(port) && *st == "0A" && *inode != "0" {
                inodes.push(format!("socket:[{inode}]"));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for proc in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = proc
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && inodes.iter().any(|i| target.as_os_str() == i.as_str())
            {
                let comm = std::fs::read_to_string(proc.path().join("comm"))
                    .map(|c| c.trim().to_string())
                    .unwrap_or_else(|_| "?".into());
                return Some(format!("{comm} (pid {pid})"));
            }
        }
    }
    Some("a process of another user".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_ports_are_below_the_ephemeral_range_and_repeat() {
        let (lo, hi) = stable_range();
        let (eph_lo, _) = ephemeral_range();
        assert!(hi <= eph_lo && lo < hi, "{lo}..{hi} vs {eph_lo}");
        let a = stable_port("shop/test/api").expect("a free port");
        assert!((lo..hi).contains(&a), "{a}");
        assert_eq!(stable_port("shop/test/api"), Some(a));
        // Taken: the next free one.
        let taken = TcpListener::bind(("127.0.0.1", a)).expect("bind");
        let b = stable_port("shop/test/api").expect("another");
        assert_ne!(a, b);
        drop(taken);
    }

    #[test]
    fn the_holder_of_a_port_is_named() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let who = holder(port).expect("found");
        assert!(
            who.contains(&format!("pid {}", std::process::id())),
            "{who}"
        );
        drop(l);
        assert_eq!(holder(port), None);
    }
}
