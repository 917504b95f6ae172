//! The mount plan: from an isolation spec and what the host looks like, the exact list of
//! filesystem operations that build an environment's root. Pure, so it is tested without root.

use std::path::{Path, PathBuf};

/// Files under /etc that never enter a sandbox: they are covered by an unreadable empty file.
pub const SECRETS: &[&str] =
    &["/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers"];

/// Host directories that make up a sandbox's system: bound read-only, or recreated as the
/// symlinks they are on a merged-/usr host.
pub const SYSTEM_DIRS: &[&str] = &["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc"];

/// The resolver configuration, which an environment's own network may need to replace.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Device nodes bound from the host into the sandbox's own small /dev.
pub const DEVICES: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Mkdir(PathBuf),
    Tmpfs {
        target: PathBuf,
        size_bytes: u64,
        mode: u32,
    },
    /// A bind mount; read-only ones are remounted read-only, all are nosuid and nodev.
    Bind {
        source: PathBuf,
        target: PathBuf,
        writable: bool,
    },
    /// Creates an empty regular file (a bind target or a mask).
    Touch {
        path: PathBuf,
        mode: u32,
    },
    Symlink {
        path: PathBuf,
        points_to: PathBuf,
    },
    /// A read-only overlay of several directories; the first wins.
    Overlay {
        lowers: Vec<PathBuf>,
        target: PathBuf,
    },
    Proc(PathBuf),
    /// A device node bound from the host (a plain bind: `nodev` would make it useless).
    Device {
        source: PathBuf,
        target: PathBuf,
    },
}

/// What the plan needs to know about the host.
pub trait HostView {
    /// The target of `path` when it is a symlink.
    fn symlink(&self, path: &Path) -> Option<PathBuf>;
    fn exists(&self, path: &Path) -> bool;
    /// `path` with every symlink resolved, when it exists.
    fn canonical(&self, path: &Path) -> Option<PathBuf>;
    /// The entries of directory `dir`, sorted, each with whether it is a directory (not
    /// following symlinks). Only image roots are listed.
    fn entries(&self, _dir: &Path) -> Vec<(std::ffi::OsString, bool)> {
        Vec::new()
    }
}

/// Top-level directories of an image root that the sandbox makes itself.
const IMAGE_OWN: &[&str] = &["dev", "proc", "tmp"];

/// A directory that appears inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: PathBuf,
    pub writable: bool,
}

/// The filesystem an environment sees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filesystem {
    /// Extra read-only host trees visible at their own paths (an interpreter's installation).
    pub host_paths: Vec<PathBuf>,
    pub mounts: Vec<Mount>,
    /// Directories merged read-only at `/opt`, the last one winning (Lambda layers).
    pub opt_layers: Vec<PathBuf>,
    pub tmp_size_mb: u64,
    /// A prepared scratch volume for `/tmp`; without one `/tmp` is a tmpfs of `tmp_size_mb`.
    pub tmp_volume: Option<PathBuf>,
    /// `/tmp` a fresh directory made under this one at spawn and deleted at release, instead of
    /// a volume of `tmp_size_mb` (a process in an instance: its disk, shared, as containers'
    /// writable layers share an ECS instance's volume).
    pub tmp_under: Option<PathBuf>,
    /// A host file shown as `/etc/resolv.conf` (see [`crate::Network::resolv_conf`]).
    pub resolv_conf: Option<PathBuf>,
    /// A container image's root file system: the sandbox's `/` is built from it (each top-level
    /// entry bound read-only) instead of the host's system directories.
    pub image_root: Option<PathBuf>,
}

/// Builds the plan that assembles the sandbox's root under `root`.
pub fn plan(root: &Path, fs: &Filesystem, host: &dyn HostView) -> Vec<Op> {
    let mut ops = Vec::new();
    let inside = |path: &Path| root.join(path.strip_prefix("/").unwrap_or(path));
    let mut made: Vec<PathBuf> = Vec::new();
    let mut mkdir_all = |ops: &mut Vec<Op>, path: &Path| {
        let mut partial = PathBuf::from("/");
        for component in path.strip_prefix("/").unwrap_or(path).components() {
            partial.push(component);
            if !made.contains(&partial) {
                made.push(partial.clone());
                ops.push(Op::Mkdir(inside(&partial)));
            }
        }
    };

    if let Some(image) = &fs.image_root {
        for (name, is_dir) in host.entries(image) {
            if IMAGE_OWN.iter().any(|own| name == *own) {
                continue;
            }
            let (source, target) = (image.join(&name), Path::new("/").join(&name));
            if let Some(points_to) = host.symlink(&source) {
                ops.push(Op::Symlink { path: inside(&target), points_to });
            } else if is_dir {
                mkdir_all(&mut ops, &target);
                ops.push(Op::Bind { source, target: inside(&target), writable: false });
            } else {
                ops.push(Op::Touch { path: inside(&target), mode: 0o644 });
                ops.push(Op::Bind { source, target: inside(&target), writable: false });
            }
        }
    }
    for dir in SYSTEM_DIRS.iter().map(Path::new).filter(|_| fs.image_root.is_none()) {
        if let Some(points_to) = host.symlink(dir) {
            ops.push(Op::Symlink { path: inside(dir), points_to });
        } else if host.exists(dir) {
            mkdir_all(&mut ops, dir);
            ops.push(Op::Bind { source: dir.into(), target: inside(dir), writable: false });
        }
    }
    if let Some((bash, sh)) = bash_as_sh(host).filter(|_| fs.image_root.is_none()) {
        ops.push(Op::Bind { source: bash, target: inside(&sh), writable: false });
    }
    let mask = root.join(".masked");
    ops.push(Op::Touch { path: mask.clone(), mode: 0o000 });
    for secret in SECRETS.iter().map(Path::new).filter(|p| fs.image_root.is_none() && host.exists(p)) {
        ops.push(Op::Bind { source: mask.clone(), target: inside(secret), writable: false });
    }
    for path in &fs.host_paths {
        if SYSTEM_DIRS.iter().any(|dir| path.starts_with(dir)) || !host.exists(path) {
            continue; // already visible through a system directory
        }
        mkdir_all(&mut ops, path);
        ops.push(Op::Bind { source: path.clone(), target: inside(path), writable: false });
    }

    mkdir_all(&mut ops, Path::new("/dev"));
    ops.push(Op::Tmpfs { target: inside(Path::new("/dev")), size_bytes: 64 * 1024, mode: 0o755 });
    for device in DEVICES.iter().map(Path::new) {
        ops.push(Op::Touch { path: inside(device), mode: 0o666 });
        ops.push(Op::Device { source: device.into(), target: inside(device) });
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        ops.push(Op::Symlink { path: inside(&Path::new("/dev").join(name)), points_to: target.into() });
    }
    ops.push(Op::Mkdir(inside(Path::new("/dev/shm"))));
    ops.push(Op::Tmpfs { target: inside(Path::new("/dev/shm")), size_bytes: 64 << 20, mode: 0o1777 });

    mkdir_all(&mut ops, Path::new("/proc"));
    ops.push(Op::Proc(inside(Path::new("/proc"))));
    mkdir_all(&mut ops, Path::new("/tmp"));
    match &fs.tmp_volume {
        Some(volume) => {
            ops.push(Op::Bind { source: volume.clone(), target: inside(Path::new("/tmp")), writable: true })
        }
        None => ops.push(Op::Tmpfs {
            target: inside(Path::new("/tmp")),
            size_bytes: fs.tmp_size_mb << 20,
            mode: 0o1777,
        }),
    }

    match fs.opt_layers.as_slice() {
        [] => {}
        [only] => {
            mkdir_all(&mut ops, Path::new("/opt"));
            ops.push(Op::Bind { source: only.clone(), target: inside(Path::new("/opt")), writable: false });
        }
        layers => {
            mkdir_all(&mut ops, Path::new("/opt"));
            // overlayfs lists the top layer first; Lambda's later layers win.
            let lowers = layers.iter().rev().cloned().collect();
            ops.push(Op::Overlay { lowers, target: inside(Path::new("/opt")) });
        }
    }
    if let (Some(source), Some(image)) = (&fs.resolv_conf, &fs.image_root) {
        // An image's own /etc is read-only: its resolv.conf is covered when it has one.
        let own = image.join("etc/resolv.conf");
        if host.exists(&own) && host.symlink(&own).is_none() {
            let target = inside(Path::new(RESOLV_CONF));
            ops.push(Op::Bind { source: source.clone(), target, writable: false });
        }
    } else if let Some(source) = &fs.resolv_conf {
        // Cover the file resolv.conf resolves to: on systemd hosts a link into /run, which the
        // sandbox does not otherwise show.
        let target = host.canonical(Path::new(RESOLV_CONF)).unwrap_or_else(|| RESOLV_CONF.into());
        if !SYSTEM_DIRS.iter().any(|dir| target.starts_with(dir)) {
            mkdir_all(&mut ops, target.parent().unwrap_or(Path::new("/")));
            ops.push(Op::Touch { path: inside(&target), mode: 0o644 });
            ops.push(Op::Bind { source: source.clone(), target: inside(&target), writable: false });
        } else if host.exists(&target) {
            ops.push(Op::Bind { source: source.clone(), target: inside(&target), writable: false });
        }
    }
    for mount in &fs.mounts {
        mkdir_all(&mut ops, &mount.target);
        ops.push(Op::Bind {
            source: mount.source.clone(),
            target: inside(&mount.target),
            writable: mount.writable,
        });
    }
    ops
}

/// What Amazon Linux 2023 says in `/etc/os-release` (Lambda's `provided.al2023` and the newer
/// runtimes, Batch's ECS-optimized AMIs run on it).
pub const AL2023_OS_RELEASE: &str = r#"NAME="Amazon Linux"
VERSION="2023"
ID="amzn"
ID_LIKE="fedora"
VERSION_ID="2023"
PLATFORM_ID="platform:al2023"
PRETTY_NAME="Amazon Linux 2023"
ANSI_COLOR="0;33"
CPE_NAME="cpe:2.3:o:amazon:amazon_linux:2023"
HOME_URL="https://aws.amazon.com/linux/amazon-linux-2023/"
DOCUMENTATION_URL="https://docs.aws.amazon.com/linux/"
SUPPORT_URL="https://aws.amazon.com/premiumsupport/"
BUG_REPORT_URL="https://github.com/amazonlinux/amazon-linux-2023"
VENDOR_NAME="AWS"
VENDOR_URL="https://aws.amazon.com/"
SUPPORT_END="2029-06-30"
"#;

/// A sandbox on the host's root looks like Amazon Linux 2023 to programs that read
/// `/etc/os-release`: `file` (AL2023's text, written by the sandbox) is bound over the file
/// `/etc/os-release` resolves to. Image roots keep their own.
pub fn os_release(root: &Path, fs: &Filesystem, file: &Path, host: &dyn HostView) -> Vec<Op> {
    let target = host.canonical(Path::new("/etc/os-release"));
    match target {
        Some(target) if fs.image_root.is_none() && SYSTEM_DIRS.iter().any(|dir| target.starts_with(dir)) => {
            let inside = root.join(target.strip_prefix("/").unwrap_or(&target));
            vec![Op::Bind { source: file.to_owned(), target: inside, writable: false }]
        }
        _ => Vec::new(),
    }
}

/// On Amazon Linux `/bin/sh` is bash, and custom runtimes written as shell scripts rely on its
/// bashisms; Debian's is dash. When the host has bash, it is bound over the file `/bin/sh`
/// resolves to (mounting follows symlinks, so `/usr/bin/sh` and that shell's own name, `dash`,
/// run bash too). Returns (bash, the file to cover), both inside the bound system directories.
fn bash_as_sh(host: &dyn HostView) -> Option<(PathBuf, PathBuf)> {
    let bash = host.canonical(Path::new("/bin/bash"))?;
    let sh = host.canonical(Path::new("/bin/sh"))?;
    // Canonical paths under a system directory: that directory is bound at its own path.
    let visible = |path: &Path| SYSTEM_DIRS.iter().any(|dir| path.starts_with(dir));
    (sh != bash && visible(&bash) && visible(&sh)).then_some((bash, sh))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A merged-/usr host with a shadow file and a pyenv installation.
    struct FakeHost {
        links: HashMap<PathBuf, PathBuf>,
        files: Vec<PathBuf>,
        /// Paths whose symlinks resolve elsewhere (the rest are their own canonical path).
        resolved: HashMap<PathBuf, PathBuf>,
    }

    impl HostView for FakeHost {
        fn symlink(&self, path: &Path) -> Option<PathBuf> {
            self.links.get(path).cloned()
        }
        fn exists(&self, path: &Path) -> bool {
            self.files.iter().any(|f| f == path) || self.links.contains_key(path)
        }
        fn canonical(&self, path: &Path) -> Option<PathBuf> {
            let resolved = self.resolved.get(path).cloned().unwrap_or_else(|| path.into());
            self.exists(&resolved).then_some(resolved)
        }
    }

    fn host() -> FakeHost {
        FakeHost {
            links: [("/bin", "usr/bin"), ("/lib", "usr/lib"), ("/lib64", "usr/lib64"), ("/sbin", "usr/sbin")]
                .into_iter()
                .map(|(a, b)| (PathBuf::from(a), PathBuf::from(b)))
                .collect(),
            files: [
                "/usr",
                "/etc",
                "/etc/shadow",
                "/root/.pyenv/versions/3.11.7",
                "/data/code/abc",
                "/usr/bin/bash",
                "/usr/bin/dash",
            ]
            .into_iter()
            .map(PathBuf::from)
            .collect(),
            // Debian: /bin/sh -> dash, through the merged-/usr symlink.
            resolved: [("/bin/sh", "/usr/bin/dash"), ("/bin/bash", "/usr/bin/bash")]
                .into_iter()
                .map(|(a, b)| (PathBuf::from(a), PathBuf::from(b)))
                .collect(),
        }
    }

    #[test]
    fn an_image_root_replaces_the_hosts_system_directories() {
        struct ImageHost(FakeHost);
        impl HostView for ImageHost {
            fn symlink(&self, path: &Path) -> Option<PathBuf> {
                (path == Path::new("/img/lib")).then(|| "usr/lib".into()).or_else(|| self.0.symlink(path))
            }
            fn exists(&self, path: &Path) -> bool {
                self.0.exists(path)
            }
            fn canonical(&self, path: &Path) -> Option<PathBuf> {
                self.0.canonical(path)
            }
            fn entries(&self, dir: &Path) -> Vec<(std::ffi::OsString, bool)> {
                assert_eq!(dir, Path::new("/img"));
                [("bin", true), ("dev", true), ("lib", false), ("marker", false)]
                    .into_iter()
                    .map(|(n, d)| (n.into(), d))
                    .collect()
            }
        }
        let fs = Filesystem { image_root: Some("/img".into()), mounts: vec![], ..filesystem() };
        let ops = plan(Path::new("/r"), &fs, &ImageHost(host()));
        let bind = |s: &str, t: &str| Op::Bind { source: s.into(), target: t.into(), writable: false };
        assert!(ops.contains(&bind("/img/bin", "/r/bin")));
        assert!(ops.contains(&Op::Symlink { path: "/r/lib".into(), points_to: "usr/lib".into() }));
        assert!(ops.contains(&Op::Touch { path: "/r/marker".into(), mode: 0o644 }));
        assert!(ops.contains(&bind("/img/marker", "/r/marker")));
        assert!(!ops.iter().any(|op| matches!(op, Op::Bind { source, .. } if source.starts_with("/usr") || source.starts_with("/etc") || source == Path::new("/img/dev"))));
        assert!(ops.contains(&Op::Proc("/r/proc".into())));
    }

    #[test]
    fn the_hosts_os_release_reads_as_amazon_linux() {
        let mut host = host();
        host.files.push("/usr/lib/os-release".into());
        host.resolved.insert("/etc/os-release".into(), "/usr/lib/os-release".into());
        let ops = os_release(Path::new("/r"), &filesystem(), Path::new("/d/os-release"), &host);
        let bind = Op::Bind {
            source: "/d/os-release".into(),
            target: "/r/usr/lib/os-release".into(),
            writable: false,
        };
        assert_eq!(ops, [bind]);
        let image = Filesystem { image_root: Some("/img".into()), ..filesystem() };
        assert!(os_release(Path::new("/r"), &image, Path::new("/d/os-release"), &host).is_empty());
        assert!(AL2023_OS_RELEASE.contains("ID=\"amzn\"\nID_LIKE=\"fedora\"\nVERSION_ID=\"2023\"\n"));
    }

    fn filesystem() -> Filesystem {
        Filesystem {
            host_paths: vec!["/root/.pyenv/versions/3.11.7".into(), "/usr/lib/python3".into()],
            mounts: vec![Mount {
                source: "/data/code/abc".into(),
                target: "/var/task".into(),
                writable: false,
            }],
            opt_layers: vec!["/data/layers/1".into(), "/data/layers/2".into()],
            tmp_size_mb: 512,
            tmp_volume: None,
            tmp_under: None,
            resolv_conf: None,
            image_root: None,
        }
    }

    #[test]
    fn resolv_conf_covers_the_file_it_links_to() {
        let fs = Filesystem { resolv_conf: Some("/data/network/resolv.conf".into()), ..filesystem() };
        let bind = |target: &str| Op::Bind {
            source: "/data/network/resolv.conf".into(),
            target: target.into(),
            writable: false,
        };
        let mut plain = host();
        plain.files.push("/etc/resolv.conf".into());
        assert!(plan(Path::new("/r"), &fs, &plain).contains(&bind("/r/etc/resolv.conf")));
        // systemd-resolved: a link into /run, which only this file of is shown.
        let mut systemd = host();
        systemd.links.insert("/etc/resolv.conf".into(), "../run/systemd/resolve/stub-resolv.conf".into());
        systemd.resolved.insert("/etc/resolv.conf".into(), "/run/systemd/resolve/stub-resolv.conf".into());
        systemd.files.push("/run/systemd/resolve/stub-resolv.conf".into());
        let ops = plan(Path::new("/r"), &fs, &systemd);
        let touch = Op::Touch { path: "/r/run/systemd/resolve/stub-resolv.conf".into(), mode: 0o644 };
        let (touched, bound) = (
            ops.iter().position(|op| *op == touch),
            ops.iter().position(|op| *op == bind("/r/run/systemd/resolve/stub-resolv.conf")),
        );
        assert!(ops.contains(&Op::Mkdir("/r/run/systemd/resolve".into())));
        assert!(touched.is_some() && bound > touched, "{ops:?}");
    }

    #[test]
    fn system_dirs_are_read_only_binds_or_the_hosts_symlinks() {
        let ops = plan(Path::new("/r"), &filesystem(), &host());
        assert!(ops.contains(&Op::Bind { source: "/usr".into(), target: "/r/usr".into(), writable: false }));
        assert!(ops.contains(&Op::Symlink { path: "/r/bin".into(), points_to: "usr/bin".into() }));
        assert!(!ops.iter().any(|op| matches!(op, Op::Bind { source, .. } if source == Path::new("/lib32"))));
    }

    #[test]
    fn secrets_are_masked_and_the_interpreter_prefix_is_bound_with_its_parents() {
        let ops = plan(Path::new("/r"), &filesystem(), &host());
        assert!(ops.contains(&Op::Bind {
            source: "/r/.masked".into(),
            target: "/r/etc/shadow".into(),
            writable: false
        }));
        let mkdir_root = ops.iter().position(|op| *op == Op::Mkdir("/r/root".into())).unwrap();
        let bind = ops
            .iter()
            .position(|op| matches!(op, Op::Bind { target, .. } if target == Path::new("/r/root/.pyenv/versions/3.11.7")))
            .unwrap();
        assert!(mkdir_root < bind);
        // Paths under /usr are already visible: no second bind.
        assert!(!ops
            .iter()
            .any(|op| matches!(op, Op::Bind { source, .. } if source == Path::new("/usr/lib/python3"))));
    }

    #[test]
    fn tmp_is_sized_code_is_read_only_and_later_layers_win() {
        let ops = plan(Path::new("/r"), &filesystem(), &host());
        assert!(ops.contains(&Op::Tmpfs { target: "/r/tmp".into(), size_bytes: 512 << 20, mode: 0o1777 }));
        assert!(ops.contains(&Op::Bind {
            source: "/data/code/abc".into(),
            target: "/r/var/task".into(),
            writable: false
        }));
        assert!(ops.contains(&Op::Overlay {
            lowers: vec!["/data/layers/2".into(), "/data/layers/1".into()],
            target: "/r/opt".into()
        }));
        assert!(ops.contains(&Op::Proc("/r/proc".into())));
        let with_volume = Filesystem { tmp_volume: Some("/data/scratch/v1".into()), ..filesystem() };
        let ops = plan(Path::new("/r"), &with_volume, &host());
        assert!(ops.contains(&Op::Bind {
            source: "/data/scratch/v1".into(),
            target: "/r/tmp".into(),
            writable: true
        }));
    }

    #[test]
    fn sh_is_the_hosts_bash_when_it_has_one() {
        let bind =
            Op::Bind { source: "/usr/bin/bash".into(), target: "/r/usr/bin/dash".into(), writable: false };
        let ops = plan(Path::new("/r"), &filesystem(), &host());
        let usr =
            ops.iter().position(|op| matches!(op, Op::Bind { target, .. } if target == Path::new("/r/usr")));
        assert!(usr < ops.iter().position(|op| *op == bind), "bash is bound after /usr");

        // Already bash (Amazon Linux), or no bash at all: nothing to do.
        let mut amazon = host();
        amazon.resolved.insert("/bin/sh".into(), "/usr/bin/bash".into());
        let mut no_bash = host();
        no_bash.files.retain(|f| f != Path::new("/usr/bin/bash"));
        for other in [amazon, no_bash] {
            let ops = plan(Path::new("/r"), &filesystem(), &other);
            assert!(!ops.iter().any(|op| matches!(op, Op::Bind { source, .. } if source.ends_with("bash"))));
        }
    }
}
