//! Scratch volumes for `/tmp`: a small ext4 filesystem of the requested size in a sparse file
//! on the data disk, loop-mounted. Disk-backed like AWS's ephemeral storage, so filling `/tmp`
//! never counts against the function's memory (tmpfs pages would be charged to its memory
//! cgroup). Formatting and mounting take ~40 ms, so volumes are prepared ahead in a pool.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Prepared volumes kept ready per size.
const READY_PER_SIZE: usize = 2;

pub struct Volume {
    pub dir: PathBuf,
    image: PathBuf,
}

pub struct ScratchPool {
    root: PathBuf,
    ready: Mutex<HashMap<u64, Vec<Volume>>>,
    /// Cleared the first time a volume cannot be made (no loop devices, no mkfs.ext4).
    usable: AtomicBool,
    /// Set by `close`: no new volumes; `refilling` counts the background refills still running
    /// (their mkfs and mount must not outlive nimbus, nor mount after the clean-up).
    closing: AtomicBool,
    refilling: std::sync::atomic::AtomicUsize,
}

impl ScratchPool {
    /// Uses `root` (under the data directory), first clearing what a previous run left there.
    pub fn new(root: PathBuf) -> Option<Arc<ScratchPool>> {
        unmount_all_under(&root);
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).ok()?;
        Some(Arc::new(ScratchPool {
            root,
            ready: Mutex::new(HashMap::new()),
            usable: AtomicBool::new(true),
            closing: AtomicBool::new(false),
            refilling: std::sync::atomic::AtomicUsize::new(0),
        }))
    }

    /// A fresh, empty volume of `size_mb`, from the pool when one is ready; `None` when this
    /// host cannot make them (said once). Blocking.
    pub fn take(self: &Arc<Self>, size_mb: u64) -> Option<Volume> {
        if !self.usable.load(Ordering::Acquire) {
            return None;
        }
        let ready = self.ready.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&size_mb).and_then(Vec::pop);
        let volume = match ready.map_or_else(|| self.prepare(size_mb), Ok) {
            Ok(volume) => volume,
            Err(error) => {
                if self.usable.swap(false, Ordering::AcqRel) {
                    eprintln!("nimbus: no loop-mounted scratch volumes ({error}); /tmp is a tmpfs counted as memory");
                }
                return None;
            }
        };
        let pool = self.clone();
        pool.refilling.fetch_add(1, Ordering::AcqRel);
        std::thread::spawn(move || {
            pool.refill(size_mb);
            pool.refilling.fetch_sub(1, Ordering::AcqRel);
        });
        Some(volume)
    }

    fn refill(&self, size_mb: u64) {
        while !self.closing.load(Ordering::Acquire) {
            let missing = {
                let ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
                ready.get(&size_mb).map_or(READY_PER_SIZE, |v| READY_PER_SIZE.saturating_sub(v.len()))
            };
            if missing == 0 {
                return;
            }
            let Ok(volume) = self.prepare(size_mb) else { return };
            if self.closing.load(Ordering::Acquire) {
                volume.destroy();
                return;
            }
            self.ready.lock().unwrap_or_else(|p| p.into_inner()).entry(size_mb).or_default().push(volume);
        }
    }

    fn prepare(&self, size_mb: u64) -> io::Result<Volume> {
        let id = uuid_like();
        let image = self.root.join(format!("{id}.img"));
        let dir = self.root.join(&id);
        // ext4 keeps ~2% plus a little for itself: size the image so the free space is the request.
        let image_mb = size_mb + size_mb / 50 + 2;
        let volume = Volume { dir, image };
        let result = (|| {
            std::fs::File::create(&volume.image)?.set_len(image_mb << 20)?;
            run(Command::new("mkfs.ext4")
                .args(["-q", "-F", "-m", "0", "-N", "4096", "-O", "^has_journal,^resize_inode"])
                .args(["-E", "root_owner=0:0,nodiscard"])
                .arg(&volume.image))?;
            std::fs::create_dir(&volume.dir)?;
            run(Command::new("mount").args(["-o", "loop,nosuid,nodev"]).arg(&volume.image).arg(&volume.dir))?;
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

    /// Unmounts and deletes every volume (at shutdown).
    pub fn close(&self) {
        self.closing.store(true, Ordering::Release);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.refilling.load(Ordering::Acquire) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let ready = std::mem::take(&mut *self.ready.lock().unwrap_or_else(|p| p.into_inner()));
        ready.into_values().flatten().for_each(Volume::destroy);
        unmount_all_under(&self.root);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Volume {
    /// Unmounts (the loop device detaches itself) and deletes the image. Blocking.
    pub fn destroy(self) {
        let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.dir);
        let _ = std::fs::remove_file(&self.image);
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
