//! Scratch volumes for `/tmp`: a small ext4 filesystem of the requested size in a sparse file
//! on the data disk, loop-mounted. Disk-backed like AWS's ephemeral storage, so filling `/tmp`
//! never counts against the function's memory (tmpfs pages would be charged to its memory
//! cgroup). Formatting and mounting take ~40 ms, so volumes are prepared ahead in a pool.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::pool::{Maker, Pool};

/// Prepared volumes kept ready per size.
const READY_PER_SIZE: usize = 2;

pub struct Volume {
    pub dir: PathBuf,
    /// The loop-mounted image; None for a plain directory (see [`Volume::directory`]).
    image: Option<PathBuf>,
}

pub struct ScratchPool {
    volumes: Arc<Pool<Volumes>>,
    /// Cleared the first time a volume cannot be made (no loop devices, no mkfs.ext4).
    usable: AtomicBool,
}

/// Makes volumes (keyed by size in MB) under `root`.
struct Volumes {
    root: PathBuf,
}

impl ScratchPool {
    /// Uses `root` (under the data directory), first clearing what a previous run left there.
    pub fn new(root: PathBuf) -> Option<Arc<ScratchPool>> {
        unmount_all_under(&root);
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).ok()?;
        let volumes = Arc::new(Pool::new(Volumes { root }, READY_PER_SIZE, std::time::Duration::ZERO));
        Some(Arc::new(ScratchPool { volumes, usable: AtomicBool::new(true) }))
    }

    /// A fresh, empty volume of `size_mb`, from the pool when one is ready; `None` when this
    /// host cannot make them (said once). Blocking.
    pub fn take(&self, size_mb: u64) -> Option<Volume> {
        if !self.usable.load(Ordering::Acquire) {
            return None;
        }
        match self.volumes.take(&size_mb) {
            Ok(volume) => Some(volume),
            Err(error) => {
                if self.usable.swap(false, Ordering::AcqRel) {
                    eprintln!("nimbus: no loop-mounted scratch volumes ({error}); /tmp is a tmpfs counted as memory");
                }
                None
            }
        }
    }

    /// Unmounts and deletes every volume (at shutdown).
    pub fn close(&self) {
        self.volumes.close();
        let root = &self.volumes.maker.root;
        unmount_all_under(root);
        let _ = std::fs::remove_dir_all(root);
    }
}

impl Maker for Volumes {
    type Key = u64;
    type Item = Volume;

    fn make(&self, &size_mb: &u64) -> io::Result<Volume> {
        let id = uuid_like();
        let image = self.root.join(format!("{id}.img"));
        let dir = self.root.join(&id);
        // ext4 keeps ~2% plus a little for itself: size the image so the free space is the request.
        let image_mb = size_mb + size_mb / 50 + 2;
        let volume = Volume { dir, image: Some(image.clone()) };
        let result = (|| {
            std::fs::File::create(&image)?.set_len(image_mb << 20)?;
            run(Command::new("mkfs.ext4")
                .args(["-q", "-F", "-m", "0", "-N", "4096", "-O", "^has_journal,^resize_inode"])
                .args(["-E", "root_owner=0:0,nodiscard"])
                .arg(&image))?;
            std::fs::create_dir(&volume.dir)?;
            run(Command::new("mount").args(["-o", "loop,nosuid,nodev"]).arg(&image).arg(&volume.dir))?;
            let _ = std::fs::remove_dir(volume.dir.join("lost+found"));
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&volume.dir, std::fs::Permissions::from_mode(0o1777))
        })();
        match result {
            Ok(()) => Ok(volume),
            Err(error) => {
                volume.destroy();
                Err(error)
            }
        }
    }

    fn unmake(&self, volume: Volume) {
        volume.destroy();
    }
}

impl Volume {
    /// A fresh directory `name` under `parent` (made here, world-writable and sticky as `/tmp`
    /// is): disk-backed but unsized, sharing its file system's space — a container's writable
    /// layer on an ECS instance's volume. Made in microseconds where a volume takes a mkfs and
    /// a mount. Blocking.
    pub fn directory(parent: &Path, name: &str) -> io::Result<Volume> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(parent)?;
        let dir = parent.join(name);
        std::fs::create_dir(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777))?;
        Ok(Volume { dir, image: None })
    }

    /// Unmounts (the loop device detaches itself) and deletes the image; a directory is
    /// deleted with what it holds. Blocking.
    pub fn destroy(self) {
        match self.image {
            Some(image) => {
                let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
                let _ = std::fs::remove_dir(&self.dir);
                let _ = std::fs::remove_file(&image);
            }
            None => {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
    }
}

fn run(command: &mut Command) -> io::Result<()> {
    let output = command.output()?;
    if output.status.success() {
        return Ok(());
    }
    let program = command.get_program().to_string_lossy().into_owned();
    Err(io::Error::other(format!("{program}: {}", String::from_utf8_lossy(&output.stderr).trim())))
}

fn uuid_like() -> String {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("v{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Detaches every mount below `root` (a previous run's volumes after a crash).
fn unmount_all_under(root: &Path) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mountinfo.lines() {
        let Some(point) = line.split(' ').nth(4) else { continue };
        if Path::new(point).starts_with(root) {
            let _ = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
