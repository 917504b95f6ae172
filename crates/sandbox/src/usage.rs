//! What a sandboxed process uses now: CPU time and memory, read from its cgroup (or from `/proc`
//! where no cgroup measures it), for views of running instances.

use std::fs;
use std::path::Path;

/// CPU time used and memory held.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// User + system CPU seconds so far.
    pub cpu_seconds: f64,
    /// Memory in use now, in MiB.
    pub memory_mib: u64,
}

/// CPU seconds of a process with the children it has reaped (`/proc/<pid>/stat`'s utime,
/// stime, cutime, cstime).
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields follow the last `)`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11..15)?.iter().filter_map(|f| f.parse::<u64>().ok()).sum();
    Some(ticks as f64 / clock_ticks())
}

/// Resident memory of a process in MiB (`VmRSS`).
pub fn process_memory_mib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.div_ceil(1024))
}

/// A process and everything it started that is still running (`/proc/<pid>/task/*/children`),
/// at most `MAX_TREE` of them.
pub fn process_tree(pid: u32) -> Vec<u32> {
    const MAX_TREE: usize = 4096;
    let mut tree = vec![pid];
    let mut next = 0;
    while next < tree.len() && tree.len() < MAX_TREE {
        let parent = tree[next];
        next += 1;
        let Ok(tasks) = fs::read_dir(format!("/proc/{parent}/task")) else { continue };
        for task in tasks.flatten() {
            let children = fs::read_to_string(task.path().join("children")).unwrap_or_default();
            tree.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    tree.truncate(MAX_TREE);
    tree
}

/// What a process and its running descendants use, where no cgroup counts it for them.
pub fn tree_usage(pid: u32) -> Usage {
    let tree = process_tree(pid);
    Usage {
        cpu_seconds: tree.iter().filter_map(|p| process_cpu_seconds(*p)).sum(),
        memory_mib: tree.iter().filter_map(|p| process_memory_mib(*p)).sum(),
    }
}

/// CPU seconds of the processes in a cgroup v1 directory now (with what they reaped): v1's cpu
/// controller counts no usage, and nimbus does not mount cpuacct's groups.
pub fn group_v1_cpu_seconds(dir: &Path) -> Option<f64> {
    let procs = fs::read_to_string(dir.join("cgroup.procs")).ok()?;
    Some(procs.lines().filter_map(|pid| pid.trim().parse().ok()).filter_map(process_cpu_seconds).sum())
}

/// `usage_usec` of a cgroup v2 directory's `cpu.stat` (every process that was ever in it).
pub fn group_v2_cpu_seconds(dir: &Path) -> Option<f64> {
    let stat = fs::read_to_string(dir.join("cpu.stat")).ok()?;
    let line = stat.lines().find(|line| line.starts_with("usage_usec "))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? as f64 / 1e6)
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_cpu_and_memory() {
        let pid = std::process::id();
        let start = process_cpu_seconds(pid).unwrap();
        let mut x = 0u64;
        for i in 0..30_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_seconds(pid).unwrap() >= start);
        assert!(process_memory_mib(pid).unwrap() > 0);
        assert_eq!(process_cpu_seconds(u32::MAX), None);
    }

    #[test]
    fn a_tree_counts_what_a_process_started() {
        let mut child = std::process::Command::new("sleep").arg("5").spawn().unwrap();
        let tree = process_tree(std::process::id());
        assert!(tree.contains(&child.id()), "{tree:?}");
        assert!(tree_usage(std::process::id()).memory_mib >= process_memory_mib(std::process::id()).unwrap());
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_v2_group_reports_its_usage() {
        let dir = std::env::temp_dir().join(format!("nimbus-usage-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("cpu.stat"), "usage_usec 2500000\nuser_usec 2000000\n").unwrap();
        assert_eq!(group_v2_cpu_seconds(&dir), Some(2.5));
        fs::write(dir.join("cgroup.procs"), format!("{}\n", std::process::id())).unwrap();
        assert!(group_v1_cpu_seconds(&dir).is_some());
        fs::remove_dir_all(&dir).unwrap();
    }
}
