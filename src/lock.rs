//! One nimbus per data directory: `nimbus up` holds an exclusive `flock` on `<data dir>/lock`,
//! which records its pid and address. The kernel drops the lock with the process, so a nimbus
//! killed with SIGKILL leaves nothing stale behind.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::net::SocketAddr;
use std::path::Path;

/// Held for as long as nimbus runs.
pub struct DataDirLock {
    file: File,
    path: std::path::PathBuf,
}

impl DataDirLock {
    /// Takes the lock (before binding the port, so a second nimbus on the same directory hears
    /// about the directory, whatever its port), or says who holds it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<DataDirLock> {
        let path = data_dir.join("lock");
        let open = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path);
        let mut file = open.map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
        let deadline = std::time::Instant::now() + ORPHANS_GRACE;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let mut holder = String::new();
                    let _ = file.rewind().and_then(|()| file.read_to_string(&mut holder));
                    // A nimbus killed with SIGKILL is gone, but a process it had just forked
                    // (a sandbox being set up, killed with its parent) may hold the lock a
                    // moment longer: wait for it rather than refuse.
                    let orphaned = field(&holder, "pid").parse().is_ok_and(|pid| !is_alive(pid));
                    if orphaned && std::time::Instant::now() < deadline {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        continue;
                    }
                    anyhow::bail!(
                        "data directory {} is in use by another nimbus ({})",
                        data_dir.display(),
                        describe(&holder)
                    );
                }
                Err(TryLockError::Error(e)) => anyhow::bail!("cannot lock {}: {e}", path.display()),
            }
        }
        let mut lock = DataDirLock { file, path };
        lock.write(&format!("pid={}\n", std::process::id()))?;
        Ok(lock)
    }

    /// Records where this nimbus listens, once it has bound its port.
    pub fn record(&mut self, address: SocketAddr) -> anyhow::Result<()> {
        self.write(&format!("pid={}\nport={}\naddress={address}\n", std::process::id(), address.port()))
    }

    fn write(&mut self, record: &str) -> anyhow::Result<()> {
        let file = &mut self.file;
        let written =
            file.set_len(0).and_then(|()| file.rewind()).and_then(|()| file.write_all(record.as_bytes()));
        written.map_err(|e| anyhow::anyhow!("cannot write {}: {e}", self.path.display()))
    }
}

/// How long a lock whose recorded holder is dead may stay held by that holder's last children.
const ORPHANS_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// `pid 123, port 4566` from the holder's record (which may be empty for an instant while the
/// holder writes it).
fn describe(record: &str) -> String {
    format!("pid {}, port {}", field(record, "pid"), field(record, "port"))
}

fn field<'a>(record: &'a str, name: &str) -> &'a str {
    record.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix('=')).unwrap_or("unknown")
}

/// Whether process `pid` still runs (a zombie, dead but not yet reaped, does not).
fn is_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // `pid (comm) S …`: the state follows the last ')' (comm may hold any character).
    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_told_who_has_the_directory() {
        let dir = std::env::temp_dir().join(format!("nimbus-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut first = DataDirLock::acquire(&dir).unwrap();
        first.record("127.0.0.1:4571".parse().unwrap()).unwrap();
        let error = DataDirLock::acquire(&dir).err().unwrap();
        let expected = format!("in use by another nimbus (pid {}, port 4571)", std::process::id());
        assert!(error.to_string().contains(&expected), "{error}");
        drop(first);
        DataDirLock::acquire(&dir).expect("released with its holder");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lock_its_dead_holder_left_to_a_child_is_waited_for() {
        let dir = std::env::temp_dir().join(format!("nimbus-lock-orphan-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // The holder's child: the lock's open file, its record naming a process now gone.
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        dead.wait().unwrap();
        let mut child = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("lock"))
            .unwrap();
        child.lock().unwrap();
        write!(child, "pid={}\nport=4572\n", dead.id()).unwrap();
        let letting_go = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(child);
        });
        let started = std::time::Instant::now();
        DataDirLock::acquire(&dir).expect("taken once the child let go");
        assert!(started.elapsed() >= std::time::Duration::from_millis(250));
        letting_go.join().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_empty_record_still_reads() {
        assert_eq!(describe(""), "pid unknown, port unknown");
    }
}
