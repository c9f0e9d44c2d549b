//! The server process seen from /proc: CPU time (user + system, from `/proc/<pid>/stat`),
//! resident memory, the TCP sockets of this machine and which process holds each.

use std::collections::HashMap;
use std::time::Instant;

/// CPU time and wall time at one moment.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    pub cpu_us: u64,
    pub at: Instant,
}

/// Clock ticks per second of `/proc/<pid>/stat` times.
fn ticks_per_s() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

/// The process's CPU time so far (user + system of all its threads), in microseconds.
pub fn cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: fields count from after it.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / ticks_per_s())
}

/// A CPU sample now.
pub fn sample(pid: u32) -> Option<CpuSample> {
    Some(CpuSample {
        cpu_us: cpu_us(pid)?,
        at: Instant::now(),
    })
}

/// Resident set size in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The summed CPU time of `pids` (the nodes of a cluster); `None` if any is gone or none given.
pub fn cpu_us_of(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| cpu_us(*p)).sum()
}

/// The CPU time `pids` used since `before` (a `cpu_us_of` reading of the same pids).
pub fn cpu_us_since(pids: &[u32], before: Option<u64>) -> Option<u64> {
    before
        .zip(cpu_us_of(pids))
        .map(|(a, b)| b.saturating_sub(a))
}

/// A summed CPU sample of `pids` now.
pub fn sample_of(pids: &[u32]) -> Option<CpuSample> {
    Some(CpuSample {
        cpu_us: cpu_us_of(pids)?,
        at: Instant::now(),
    })
}

/// The summed resident memory of `pids`; `None` if any is gone or none given.
pub fn rss_of(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| rss_bytes(*p)).sum()
}

/// One row of /proc/net/tcp{,6}: addresses as the kernel prints them (hex `ADDR:PORT`).
pub(crate) struct Socket {
    pub(crate) local: String,
    pub(crate) remote: String,
    pub(crate) listening: bool,
}

impl Socket {
    /// The local port, in the kernel's hex (`1F90`).
    pub(crate) fn local_port(&self) -> Option<&str> {
        self.local.rsplit_once(':').map(|(_, p)| p)
    }
}

/// Every TCP socket of this network namespace, by inode.
pub(crate) fn tcp_sockets() -> HashMap<u64, Socket> {
    let mut all = HashMap::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address 1, rem_address 2, st 3 (0A = LISTEN), inode 9.
            let (Some(local), Some(remote), Some(state), Some(inode)) =
                (f.get(1), f.get(2), f.get(3), f.get(9))
            else {
                continue;
            };
            let Ok(inode) = inode.parse::<u64>() else {
                continue;
            };
            if inode == 0 {
                continue; // TIME_WAIT and the like: nobody holds it
            }
            all.insert(
                inode,
                Socket {
                    local: local.to_string(),
                    remote: remote.to_string(),
                    listening: *state == "0A",
                },
            );
        }
    }
    all
}

/// The socket inodes `pid` holds.
pub(crate) fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|link| {
            let link = link.to_str()?.to_owned();
            link.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse::<u64>()
                .ok()
        })
        .collect()
}

/// The id of the process that listens on 127.0.0.1 (or any address) at `port`, if it is
/// visible to us: the socket's inode from /proc/net/tcp{,6}, then the process holding it.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let wanted = format!("{port:04X}");
    let inodes: Vec<u64> = tcp_sockets()
        .into_iter()
        .filter(|(_, s)| s.listening && s.local_port() == Some(wanted.as_str()))
        .map(|(i, _)| i)
        .collect();
    if inodes.is_empty() {
        return None;
    }
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| socket_inodes(*pid).iter().any(|i| inodes.contains(i)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_has_cpu_time_and_memory() {
        let me = std::process::id();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_us(me).is_some());
        assert!(rss_bytes(me).unwrap_or(0) > 0);
    }

    #[test]
    fn the_listener_of_a_port_is_found() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        assert_eq!(pid_listening_on(port), Some(std::process::id()));
    }
}
