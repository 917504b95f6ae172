//! Resource limits through cgroups, v1 or v2 per controller: hosts mount either or both, and a
//! controller is used from whichever hierarchy actually has it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Memory that buys one vCPU on AWS Lambda; CPU weight is proportional to memory.
pub const MB_PER_VCPU: u64 = 1769;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// Where one controller lives and the directory nimbus creates environment groups under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Controller {
    pub version: Version,
    pub base: PathBuf,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cgroups {
    pub memory: Option<Controller>,
    pub pids: Option<Controller>,
    pub cpu: Option<Controller>,
}

/// The CFS period CPU quotas are expressed in.
const CPU_PERIOD_US: u64 = 100_000;

#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub memory_mb: u64,
    pub pids: u64,
    /// A hard CPU quota in thousandths of a CPU (an EC2 instance's vCPUs × 1000); 0: none, the
    /// group only gets a weight in proportion to its memory (Lambda's model).
    pub cpu_millis: u64,
}

/// One environment's groups (one directory per distinct hierarchy).
#[derive(Debug)]
pub struct Group {
    memory: Option<(Version, PathBuf)>,
    /// The peak-usage file, opened once: every REPORT line reads it.
    peak: Option<fs::File>,
    dirs: Vec<PathBuf>,
}

impl Cgroups {
    /// Finds the controllers from `/proc/self/mountinfo` and `/proc/self/cgroup`, placing
    /// nimbus's groups at `<our group>/<name>` in each hierarchy.
    pub fn detect(name: &str) -> Cgroups {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let membership = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mut cgroups = Cgroups::from_tables(&mountinfo, &membership, name, |path| {
            fs::read_to_string(path.join("cgroup.controllers")).unwrap_or_default()
        });
        cgroups.remove_stale();
        if let Err(error) = cgroups.prepare() {
            eprintln!("nimbus: cgroups unavailable ({error}); running without resource limits");
            cgroups = Cgroups::default();
        }
        let expedited = fs::read_to_string("/sys/kernel/rcu_expedited").is_ok_and(|v| v.trim() == "1");
        if cgroups.memory.as_ref().is_some_and(|m| m.version == Version::V1) && !expedited {
            eprintln!(
                "nimbus: cgroup v1 memory controller: moving a task into a group waits ~7-15 ms, paid ahead of \
                 each cold start (a burst of cold starts may wait); `echo 1 > /sys/kernel/rcu_expedited` \
                 (host-wide) removes the wait"
            );
        }
        cgroups
    }

    /// The detection logic over the text of mountinfo and /proc/self/cgroup.
    pub fn from_tables(
        mountinfo: &str,
        membership: &str,
        name: &str,
        v2_controllers: impl Fn(&Path) -> String,
    ) -> Cgroups {
        let own_path = |wanted: Option<&str>| {
            membership.lines().find_map(|line| {
                let mut parts = line.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                let matches = match wanted {
                    Some(controller) => controllers.split(',').any(|c| c == controller),
                    None => controllers.is_empty(),
                };
                matches.then(|| path.trim_start_matches('/').to_owned())
            })
        };
        let mut v1 = Vec::new();
        let mut v2 = None;
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let mount_point = left.split(' ').nth(4).unwrap_or_default();
            let mut right = right.split(' ');
            let fstype = right.next().unwrap_or_default();
            let options = right.nth(1).unwrap_or_default();
            match fstype {
                "cgroup" => v1.push((PathBuf::from(mount_point), options.to_owned())),
                "cgroup2" => v2 = Some(PathBuf::from(mount_point)),
                _ => {}
            }
        }
        let find = |controller: &str| {
            for (mount_point, options) in &v1 {
                if options.split(',').any(|o| o == controller) {
                    let own = own_path(Some(controller)).unwrap_or_default();
                    return Some(Controller { version: Version::V1, base: mount_point.join(own).join(name) });
                }
            }
            let mount_point = v2.as_ref()?;
            let own = mount_point.join(own_path(None)?);
            v2_controllers(&own)
                .split_whitespace()
                .any(|c| c == controller)
                .then(|| Controller { version: Version::V2, base: own.join(name) })
        };
        Cgroups { memory: find("memory"), pids: find("pids"), cpu: find("cpu") }
    }

    fn controllers(&self) -> impl Iterator<Item = (&'static str, &Controller)> {
        [("memory", &self.memory), ("pids", &self.pids), ("cpu", &self.cpu)]
            .into_iter()
            .filter_map(|(name, controller)| Some((name, controller.as_ref()?)))
    }

    pub fn is_empty(&self) -> bool {
        self.memory.is_none() && self.pids.is_none()
    }

    /// Removes the groups of nimbus processes that no longer run (a crash leaves them behind).
    fn remove_stale(&self) {
        for (_, controller) in self.controllers() {
            let Some(parent) = controller.base.parent() else { continue };
            let Ok(entries) = fs::read_dir(parent) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let pid =
                    name.strip_prefix("nimbus-").and_then(|rest| rest.split('-').next()?.parse::<u32>().ok());
                if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                    let stale = Controller { version: controller.version, base: entry.path() };
                    remove_base(&Cgroups { memory: Some(stale), pids: None, cpu: None });
                }
            }
        }
    }

    /// Creates nimbus's own groups; under v2 the controllers are delegated down to them.
    fn prepare(&self) -> io::Result<()> {
        for (name, controller) in self.controllers() {
            if controller.version == Version::V2 {
                delegate_v2(controller, name)?;
            } else {
                fs::create_dir_all(&controller.base)?;
            }
        }
        Ok(())
    }

    /// Creates an environment's group with its limits.
    pub fn create(&self, id: &str, limits: Limits) -> io::Result<Group> {
        let mut group = Group { memory: None, peak: None, dirs: Vec::new() };
        for (_, controller) in self.controllers() {
            let dir = controller.base.join(id);
            if !group.dirs.contains(&dir) {
                fs::create_dir(&dir).or_else(|e| {
                    if e.kind() == io::ErrorKind::AlreadyExists {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })?;
                group.dirs.push(dir.clone());
            }
        }
        self.set_limits(&mut group, limits)?;
        if let Some((version, dir)) = &group.memory {
            let file = match version {
                Version::V1 => "memory.max_usage_in_bytes",
                Version::V2 => "memory.peak",
            };
            group.peak = fs::File::open(dir.join(file)).ok();
        }
        Ok(group)
    }

    /// Whether every controller is a v1 one: only v1 lets one thread sit in a group apart from
    /// its process (see [`Group::enter_with_this_thread`]).
    pub fn all_v1(&self) -> bool {
        !self.is_empty() && self.controllers().all(|(_, c)| c.version == Version::V1)
    }

    /// Moves the calling thread back into nimbus's own groups.
    pub fn leave_with_this_thread(&self) -> io::Result<()> {
        for (_, controller) in self.controllers() {
            if let Some(own) = controller.base.parent() {
                fs::write(own.join("tasks"), gettid().to_string())?;
            }
        }
        Ok(())
    }

    /// Sets (or changes) a group's limits.
    pub fn set_limits(&self, group: &mut Group, limits: Limits) -> io::Result<()> {
        for (name, controller) in self.controllers() {
            let dir = controller.base.join(group.name());
            let bytes = limits.memory_mb << 20;
            match (name, controller.version) {
                ("memory", Version::V1) => {
                    // No swap beyond the limit, where the kernel accounts swap. The memory+swap
                    // limit may never be below the memory limit: around the memory limit it is
                    // written before (raising) and after (lowering); one of the two succeeds.
                    let swap = dir.join("memory.memsw.limit_in_bytes");
                    let _ = fs::write(&swap, bytes.to_string());
                    fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string())?;
                    let _ = fs::write(&swap, bytes.to_string());
                    group.memory = Some((Version::V1, dir));
                }
                ("memory", Version::V2) => {
                    fs::write(dir.join("memory.max"), bytes.to_string())?;
                    let _ = fs::write(dir.join("memory.swap.max"), "0");
                    group.memory = Some((Version::V2, dir));
                }
                ("pids", _) => fs::write(dir.join("pids.max"), limits.pids.to_string())?,
                ("cpu", Version::V1) => {
                    let shares = (limits.memory_mb * 1024 / MB_PER_VCPU).max(2);
                    fs::write(dir.join("cpu.shares"), shares.to_string())?;
                    if limits.cpu_millis > 0 {
                        fs::write(dir.join("cpu.cfs_period_us"), CPU_PERIOD_US.to_string())?;
                        fs::write(
                            dir.join("cpu.cfs_quota_us"),
                            (limits.cpu_millis * CPU_PERIOD_US / 1000).to_string(),
                        )?;
                    }
                }
                ("cpu", Version::V2) => {
                    let weight = (limits.memory_mb * 100 / MB_PER_VCPU).clamp(1, 10_000);
                    fs::write(dir.join("cpu.weight"), weight.to_string())?;
                    if limits.cpu_millis > 0 {
                        let quota = limits.cpu_millis * CPU_PERIOD_US / 1000;
                        fs::write(dir.join("cpu.max"), format!("{quota} {CPU_PERIOD_US}"))?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The calling thread's id.
fn gettid() -> i64 {
    // SAFETY: gettid has no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) }
}

impl Group {
    /// The group's directory name (the same under every controller).
    fn name(&self) -> std::ffi::OsString {
        self.dirs.first().and_then(|d| d.file_name()).map(|n| n.to_owned()).unwrap_or_default()
    }

    /// Moves the calling thread (only it) into this group under v1: a process it then clones is
    /// born inside the group, so no move of the new process has to wait for the kernel.
    pub fn enter_with_this_thread(&self) -> io::Result<()> {
        for dir in &self.dirs {
            fs::write(dir.join("tasks"), gettid().to_string())?;
        }
        Ok(())
    }

    /// The files a process writes `0` to in order to join this group.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|dir| dir.join("cgroup.procs")).collect()
    }

    /// Peak memory of the group in MiB.
    pub fn peak_memory_mib(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut buffer = [0u8; 32];
        let read = self.peak.as_ref()?.read_at(&mut buffer, 0).ok()?;
        let bytes: u64 = std::str::from_utf8(&buffer[..read]).ok()?.trim().parse().ok()?;
        Some(bytes.div_ceil(1 << 20))
    }

    /// What the group's processes use now: memory the group is charged, CPU seconds (see
    /// [`crate::usage`]).
    pub fn usage(&self) -> Option<crate::Usage> {
        use crate::usage::{group_v1_cpu_seconds, group_v2_cpu_seconds};
        let (version, dir) = self.memory.as_ref()?;
        let (file, cpu) = match version {
            Version::V1 => ("memory.usage_in_bytes", group_v1_cpu_seconds(dir)),
            Version::V2 => ("memory.current", group_v2_cpu_seconds(dir)),
        };
        let bytes: u64 = fs::read_to_string(dir.join(file)).ok()?.trim().parse().ok()?;
        Some(crate::Usage { cpu_seconds: cpu.unwrap_or(0.0), memory_mib: bytes.div_ceil(1 << 20) })
    }

    /// Whether the kernel's OOM killer has killed a process of this group.
    pub fn oom_killed(&self) -> bool {
        let Some((version, dir)) = self.memory.as_ref() else { return false };
        let file = match version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        let text = fs::read_to_string(dir.join(file)).unwrap_or_default();
        text.lines().any(|line| {
            let mut words = line.split_whitespace();
            words.next() == Some("oom_kill") && words.next().is_some_and(|n| n != "0")
        })
    }

    /// Removes the group's directories; they must hold no live process.
    pub fn remove(&self) {
        for dir in &self.dirs {
            for _ in 0..20 {
                if fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}

/// v2 lets a group hand a controller to its children only while it holds no process itself, and
/// nimbus's own group holds nimbus: nimbus moves into a leaf beside its environments' base first.
fn delegate_v2(controller: &Controller, name: &str) -> io::Result<()> {
    let enable = |dir: &Path| fs::write(dir.join("cgroup.subtree_control"), format!("+{name}"));
    let own = controller.base.parent().ok_or_else(|| io::Error::other("cgroup base has no parent"))?;
    if enable(own).is_err() {
        let leaf = self_leaf(controller);
        fs::create_dir_all(&leaf)?;
        fs::write(leaf.join("cgroup.procs"), std::process::id().to_string())?;
        enable(own)?;
    }
    fs::create_dir_all(&controller.base)?;
    enable(&controller.base)
}

/// The leaf nimbus moves itself into under v2 (see [`delegate_v2`]).
fn self_leaf(controller: &Controller) -> PathBuf {
    let mut name = controller.base.file_name().unwrap_or_default().to_owned();
    name.push("-self");
    controller.base.with_file_name(name)
}

/// Removes nimbus's base groups (at shutdown) and any environment groups left in them.
pub fn remove_base(cgroups: &Cgroups) {
    for (_, controller) in cgroups.controllers() {
        if let Ok(entries) = fs::read_dir(&controller.base) {
            for entry in entries.flatten().filter(|e| e.path().is_dir()) {
                let _ = fs::remove_dir(entry.path());
            }
        }
        let _ = fs::remove_dir(&controller.base);
        if controller.version == Version::V2 {
            // Back into our original group, so the leaf can go too.
            if let Some(own) = controller.base.parent() {
                let _ = fs::write(own.join("cgroup.subtree_control"), "-memory -pids -cpu");
                let _ = fs::write(own.join("cgroup.procs"), std::process::id().to_string());
            }
            let _ = fs::remove_dir(self_leaf(controller));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO_V1: &str = "\
35 25 0:30 / /sys/fs/cgroup/memory rw,relatime shared:14 - cgroup cgroup rw,memory
36 25 0:31 / /sys/fs/cgroup/pids rw,relatime shared:15 - cgroup cgroup rw,pids
37 25 0:32 / /sys/fs/cgroup/cpu rw,relatime shared:16 - cgroup cgroup rw,cpu
38 25 0:33 / /sys/fs/cgroup/unified rw,relatime shared:17 - cgroup2 cgroup2 rw";
    const MEMBERSHIP_V1: &str = "8:pids:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n";

    #[test]
    fn hybrid_hosts_use_v1_for_controllers_mounted_there() {
        let cgroups = Cgroups::from_tables(MOUNTINFO_V1, MEMBERSHIP_V1, "nimbus-1", |_| "hugetlb".into());
        let memory = cgroups.memory.unwrap();
        assert_eq!(memory.version, Version::V1);
        assert_eq!(memory.base, Path::new("/sys/fs/cgroup/memory/process_api/abc/nimbus-1"));
        assert_eq!(cgroups.pids.unwrap().base, Path::new("/sys/fs/cgroup/pids/nimbus-1"));
    }

    #[test]
    fn pure_v2_hosts_use_the_unified_tree_where_controllers_are_delegated() {
        let mountinfo = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate";
        let cgroups = Cgroups::from_tables(mountinfo, "0::/user.slice/x.scope\n", "nimbus-1", |path| {
            assert_eq!(path, Path::new("/sys/fs/cgroup/user.slice/x.scope"));
            "cpu memory pids".into()
        });
        let pids = cgroups.pids.unwrap();
        assert_eq!(pids.version, Version::V2);
        assert_eq!(pids.base, Path::new("/sys/fs/cgroup/user.slice/x.scope/nimbus-1"));
        let none = Cgroups::from_tables(mountinfo, "0::/\n", "n", |_| String::new());
        assert!(none.is_empty());
    }

    #[test]
    fn groups_get_limits_and_report_peak_and_oom_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let v2 = Controller { version: Version::V2, base: dir.path().to_owned() };
        let cgroups = Cgroups { memory: Some(v2.clone()), pids: Some(v2.clone()), cpu: Some(v2) };
        // The kernel creates a group's files with the directory; the fake needs them made.
        let env = dir.path().join("env1");
        fs::create_dir(&env).unwrap();
        fs::write(env.join("memory.peak"), "0\n").unwrap();
        let group = cgroups.create("env1", Limits { memory_mb: 128, pids: 1024, cpu_millis: 0 }).unwrap();
        assert_eq!(fs::read_to_string(env.join("memory.max")).unwrap(), "134217728");
        assert_eq!(fs::read_to_string(env.join("pids.max")).unwrap(), "1024");
        assert_eq!(fs::read_to_string(env.join("cpu.weight")).unwrap(), "7");
        fs::write(env.join("memory.peak"), "50000000\n").unwrap();
        assert_eq!(group.peak_memory_mib(), Some(48));
        fs::write(env.join("memory.events"), "low 0\nmax 3\noom 1\noom_kill 1\n").unwrap();
        assert!(group.oom_killed());
        assert_eq!(group.procs_files(), vec![env.join("cgroup.procs")]);
    }
}
