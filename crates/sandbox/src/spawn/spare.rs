//! Sandboxes made ahead, one at a time per kind of process (an instance's next job): cloned in
//! its cgroup and network namespace, its root assembled but for the process's own mounts, and
//! waiting. Starting the process then only hands it what is its own — program, arguments,
//! environment, user, rlimits, cgroup limits, mounts — and opens its gate: no clone, no cgroup
//! move, no root to build on the way to RUNNING. Each is used once: a process never meets what
//! another left (its `/tmp` is a fresh directory made with the spare).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::{Job, Raw, RealHost, Sandbox, Started};
use crate::child::{Gate, Handoff, RawOp};
use crate::os::cstring;
use crate::plan::{self, Filesystem, Op};
use crate::scratch::Volume;
use crate::{Isolation, Spec};

/// The shared memory a job is handed through: its arguments and environment fit (Linux's own
/// limit for both together is about 2 MiB); a larger one starts a sandbox of its own.
const HANDOFF_BYTES: usize = 4 << 20;

/// How long a spare is handed jobs: its child gives up waiting at
/// [`crate::child::GATE_WAIT_MS`], well after, so a job never meets a child that just left.
const FRESH: std::time::Duration = std::time::Duration::from_secs(20);

/// Where one kind of process keeps its next sandbox (see [`Sandbox::spawn_in`]).
#[derive(Default)]
pub struct Spare {
    ready: Mutex<Option<Ready>>,
    /// A spare is being made: no second one is started meanwhile.
    making: AtomicBool,
}

/// What a spare was made for: a spec but for the process's own parts.
#[derive(Clone)]
struct Shape {
    filesystem: Filesystem,
    netns: Option<Arc<OwnedFd>>,
}

impl Shape {
    fn of(spec: &Spec) -> Shape {
        let mut filesystem = spec.filesystem.clone();
        filesystem.mounts.clear();
        filesystem.tmp_volume = None;
        Shape { filesystem, netns: spec.netns.clone() }
    }

    fn fits(&self, other: &Shape) -> bool {
        let same_network = match (&self.netns, &other.netns) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        same_network && self.filesystem == other.filesystem
    }
}

/// A child waiting at its gate.
struct Ready {
    shape: Shape,
    made: std::time::Instant,
    /// Taken when launched; an unused spare's child is killed and reaped when it is dropped.
    raw: Option<Raw>,
    gate: OwnedFd,
    handoff: Region,
    volume: Option<Volume>,
    live: Arc<AtomicUsize>,
}

impl Spare {
    fn take(&self, shape: &Shape) -> Option<Ready> {
        let mut ready = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        // One of another kind (another image, say) is of no use to what comes next either, nor
        // one about to give up waiting.
        ready.take().filter(|r| r.shape.fits(shape) && r.made.elapsed() < FRESH)
    }

    /// Whether a spare is waiting (for tests and the console).
    pub fn is_ready(&self) -> bool {
        self.ready.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }
}

impl Sandbox {
    /// Starts `spec` in `spare`'s waiting sandbox when it was made for this kind of process,
    /// else as [`Sandbox::spawn`] does; either way the next spare is made behind it, so the
    /// next start of this kind finds one.
    pub async fn spawn_in(self: &Arc<Self>, spare: &Arc<Spare>, spec: Spec) -> io::Result<Started> {
        let shape = Shape::of(&spec);
        let spared = self.isolation == Isolation::Namespaces
            && (spec.filesystem.tmp_under.is_some() || spec.filesystem.tmp_size_mb == 0);
        if !spared {
            return self.spawn(spec).await;
        }
        let next =
            Spec { id: format!("{}-next", spec.id), filesystem: shape.filesystem.clone(), ..spec.clone() };
        let started = match spare.take(&shape) {
            Some(ready) => match self.launch(ready, &spec).await {
                Ok(Some(started)) => Ok(started),
                Ok(None) => self.spawn(spec).await,
                Err(error) => Err(error),
            },
            None => self.spawn(spec).await,
        };
        if !spare.making.swap(true, Ordering::AcqRel) {
            let (sandbox, spare) = (self.clone(), spare.clone());
            tokio::spawn(async move {
                match sandbox.make_ready(next).await {
                    Ok(ready) => *spare.ready.lock().unwrap_or_else(|p| p.into_inner()) = Some(ready),
                    Err(error) => eprintln!("nimbus: cannot make a sandbox ahead ({error})"),
                }
                spare.making.store(false, Ordering::Release);
            });
        }
        started
    }

    /// Clones a child for `spec` (its own mounts left out) that builds its root's common part
    /// and waits at its gate.
    async fn make_ready(self: &Arc<Self>, mut spec: Spec) -> io::Result<Ready> {
        let shape = Shape::of(&spec);
        let volume = match spec.filesystem.tmp_under.clone() {
            Some(parent) => {
                let name = spec.id.replace('/', "_");
                let volume = tokio::task::spawn_blocking(move || Volume::directory(&parent, &name))
                    .await
                    .map_err(io::Error::other)??;
                spec.filesystem.tmp_volume = Some(volume.dir.clone());
                Some(volume)
            }
            None => None,
        };
        let cloned = async {
            let handoff = Region::new(HANDOFF_BYTES)?;
            let (gate_r, gate_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
            let gate = Gate { fd: gate_r.as_raw_fd(), handoff: handoff.base.cast() };
            let (reply, answer) = tokio::sync::oneshot::channel();
            let sandbox = self.clone();
            let job: Job = Box::new(move || {
                let _ = reply.send(sandbox.start_blocking(&spec, Some(gate)));
                drop(gate_r);
                sandbox.refill_slot();
            });
            self.spawner.send(job).map_err(|_| io::Error::other("spawner thread is gone"))?;
            let raw = answer.await.map_err(|_| io::Error::other("spawner thread is gone"))??;
            self.live.fetch_add(1, Ordering::AcqRel);
            Ok::<_, io::Error>((raw, gate_w, handoff))
        };
        match cloned.await {
            Ok((raw, gate, handoff)) => Ok(Ready {
                shape,
                made: std::time::Instant::now(),
                raw: Some(raw),
                gate,
                handoff,
                volume,
                live: self.live.clone(),
            }),
            Err(error) => {
                if let Some(volume) = volume {
                    tokio::task::spawn_blocking(move || volume.destroy());
                }
                Err(error)
            }
        }
    }

    /// Hands `spec` to a spare and opens its gate. `None` when the spare cannot take it (too
    /// large, a mount it cannot make, its child gone): the caller starts a sandbox of its own.
    async fn launch(&self, mut ready: Ready, spec: &Spec) -> io::Result<Option<Started>> {
        let Some(mut raw) = ready.raw.take() else { return Ok(None) };
        // The job's mounts: the ops the whole plan has beyond the spare's.
        let mut whole = spec.filesystem.clone();
        whole.tmp_volume = ready.volume.as_ref().map(|v| v.dir.clone());
        let common = Filesystem { mounts: Vec::new(), ..whole.clone() };
        let skip = plan::plan(&self.root_dir, &common, &RealHost).len();
        let ops = plan::plan(&self.root_dir, &whole, &RealHost).split_off(skip);
        if !ready.handoff.write(self, spec, &ops) {
            ready.raw = Some(raw);
            return Ok(None);
        }
        if let Some(group) = raw.group.as_mut() {
            if let Err(error) = self.cgroups.set_limits(group, spec.limits) {
                ready.raw = Some(raw);
                return Err(error);
            }
        }
        if nix::unistd::write(&ready.gate, b"1") != Ok(1) {
            ready.raw = Some(raw);
            return Ok(None);
        }
        // Counted live since it was made; from here it is an ordinary child.
        let volume = ready.volume.take();
        match self.adopt(raw).await {
            Ok(mut started) => {
                started.child.volume = Mutex::new(volume);
                Ok(Some(started))
            }
            Err(error) => {
                if let Some(volume) = volume {
                    tokio::task::spawn_blocking(move || volume.destroy());
                }
                Err(error)
            }
        }
    }
}

impl Drop for Ready {
    /// An unused spare: its child killed and reaped, its group and `/tmp` removed.
    fn drop(&mut self) {
        let Some(raw) = self.raw.take() else { return };
        let (volume, live) = (self.volume.take(), self.live.clone());
        // SAFETY: signals the child through our own pidfd, which cannot name a reused pid.
        unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, raw.pidfd.as_raw_fd(), libc::SIGKILL, 0, 0);
        }
        std::thread::spawn(move || {
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(raw.pid as i32), None);
            if let Some(group) = &raw.group {
                group.remove();
            }
            if let Some(volume) = volume {
                volume.destroy();
            }
            live.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// Memory shared with a spare's child (mapped before its clone: at the same address in both).
struct Region {
    base: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone; the child's copy is its own.
unsafe impl Send for Region {}

impl Region {
    fn new(len: usize) -> io::Result<Region> {
        // SAFETY: a fresh anonymous mapping, unmapped in Drop.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Region { base: base.cast(), len })
    }

    /// Lays out the job's [`Handoff`] (at the start) and all it points to. False when it does
    /// not fit, or `ops` holds more than mount points and binds.
    fn write(&mut self, sandbox: &Sandbox, spec: &Spec, ops: &[Op]) -> bool {
        let mut arena = Arena { region: self, used: std::mem::size_of::<Handoff>() };
        arena.handoff(sandbox, spec, ops).is_some_and(|handoff| {
            // SAFETY: the start of the mapping, aligned and large enough for a Handoff.
            unsafe { std::ptr::write(self.base.cast::<Handoff>(), handoff) };
            true
        })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, no longer used by this process.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

/// Writes values one after the other into a [`Region`].
struct Arena<'a> {
    region: &'a Region,
    used: usize,
}

impl Arena<'_> {
    fn handoff(&mut self, sandbox: &Sandbox, spec: &Spec, ops: &[Op]) -> Option<Handoff> {
        use std::os::unix::ffi::OsStrExt;
        let string = |arena: &mut Self, bytes: &[u8]| {
            let text = std::ffi::CString::new(bytes).unwrap_or_default();
            arena.put(text.as_bytes_with_nul()).map(|p| p.cast::<libc::c_char>())
        };
        let program = string(self, spec.program.as_os_str().as_bytes())?;
        let mut argv = vec![program];
        for arg in &spec.args {
            argv.push(string(self, arg.as_bytes())?);
        }
        let mut envp = Vec::with_capacity(spec.env.len());
        for (key, value) in &spec.env {
            envp.push(string(self, format!("{key}={value}").as_bytes())?);
        }
        let mut raw_ops = Vec::with_capacity(ops.len());
        for op in ops {
            raw_ops.push(match op {
                Op::Mkdir(path) => RawOp {
                    source: std::ptr::null(),
                    target: string(self, cstring(path).as_bytes())?,
                    writable: false,
                },
                Op::Bind { source, target, writable } => RawOp {
                    source: string(self, cstring(source).as_bytes())?,
                    target: string(self, cstring(target).as_bytes())?,
                    writable: *writable,
                },
                _ => return None,
            });
        }
        Some(Handoff {
            program,
            cwd: string(self, spec.cwd.as_os_str().as_bytes())?,
            argv: self.array(&pointers_to(&argv))?,
            envp: self.array(&pointers_to(&envp))?,
            user: sandbox.user_of(spec),
            rlimits: self.array(&spec.rlimits)?,
            rlimit_count: spec.rlimits.len(),
            ops: self.array(&raw_ops)?,
            op_count: raw_ops.len(),
        })
    }

    fn put(&mut self, bytes: &[u8]) -> Option<*const u8> {
        let end = self.used.checked_add(bytes.len())?;
        if end > self.region.len {
            return None;
        }
        // SAFETY: within the mapping, past everything written before.
        let at = unsafe { self.region.base.add(self.used) };
        // SAFETY: `bytes` fits at `at` (checked above); the two cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), at, bytes.len()) };
        self.used = end;
        Some(at)
    }

    fn array<T>(&mut self, items: &[T]) -> Option<*const T> {
        self.used = self.used.next_multiple_of(std::mem::align_of::<T>().max(8));
        let size = std::mem::size_of_val(items);
        // SAFETY: the slice's own bytes; `T`s laid out as in this same program.
        let bytes = unsafe { std::slice::from_raw_parts(items.as_ptr().cast::<u8>(), size) };
        self.put(bytes).map(|p| p.cast::<T>())
    }
}

/// A NULL-terminated array of `strings` (as `execve` takes them).
fn pointers_to(strings: &[*const libc::c_char]) -> Vec<*const libc::c_char> {
    strings.iter().copied().chain(std::iter::once(std::ptr::null())).collect()
}
