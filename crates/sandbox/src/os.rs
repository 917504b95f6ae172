//! The system calls that turn a plan into a sandbox, behind [`Os`] so the sequence is tested
//! without root. Everything here runs in the cloned child before `execve`: arguments are
//! prepared C strings, and nothing allocates.

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::plan::Op;

/// One syscall-level step. Each returns the OS error on failure.
pub trait Os {
    fn mkdir(&mut self, path: &CStr, mode: u32) -> io::Result<()>;
    fn touch(&mut self, path: &CStr, mode: u32) -> io::Result<()>;
    fn symlink(&mut self, points_to: &CStr, path: &CStr) -> io::Result<()>;
    fn mount(
        &mut self,
        source: &CStr,
        target: &CStr,
        fstype: &CStr,
        flags: libc::c_ulong,
        data: &CStr,
    ) -> io::Result<()>;
}

/// A plan op with its strings ready for the system calls.
pub struct PreparedOp {
    kind: Kind,
    a: CString,
    b: CString,
    data: CString,
    mode: u32,
}

enum Kind {
    Mkdir,
    Touch,
    Symlink,
    Tmpfs,
    Bind { writable: bool },
    Overlay,
    Proc,
    Device,
}

pub fn cstring(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap_or_default()
}

fn text(value: &str) -> CString {
    CString::new(value).unwrap_or_default()
}

pub fn prepare(ops: &[Op]) -> Vec<PreparedOp> {
    let op = |kind, a: CString, b: CString, data: CString, mode| PreparedOp { kind, a, b, data, mode };
    ops.iter()
        .map(|o| match o {
            Op::Mkdir(path) => op(Kind::Mkdir, cstring(path), text(""), text(""), 0o755),
            Op::Touch { path, mode } => op(Kind::Touch, cstring(path), text(""), text(""), *mode),
            Op::Symlink { path, points_to } => {
                op(Kind::Symlink, cstring(path), cstring(points_to), text(""), 0)
            }
            Op::Tmpfs { target, size_bytes, mode } => {
                let data = text(&format!("size={size_bytes},mode={mode:o}"));
                op(Kind::Tmpfs, cstring(target), text("tmpfs"), data, 0)
            }
            Op::Bind { source, target, writable } => {
                op(Kind::Bind { writable: *writable }, cstring(source), cstring(target), text(""), 0)
            }
            Op::Overlay { lowers, target } => {
                let joined: Vec<String> = lowers.iter().map(|p| p.to_string_lossy().into_owned()).collect();
                let data = text(&format!("lowerdir={}", joined.join(":")));
                op(Kind::Overlay, cstring(target), text("overlay"), data, 0)
            }
            Op::Proc(target) => op(Kind::Proc, cstring(target), text("proc"), text(""), 0),
            Op::Device { source, target } => op(Kind::Device, cstring(source), cstring(target), text(""), 0),
        })
        .collect()
}

const NONE: &CStr = c"";

/// Applies the prepared plan; on failure returns the index of the failing op and its error.
pub fn apply(ops: &[PreparedOp], os: &mut impl Os) -> Result<(), (usize, io::Error)> {
    let nosuid = libc::MS_NOSUID | libc::MS_NODEV;
    for (index, op) in ops.iter().enumerate() {
        let result = match op.kind {
            Kind::Mkdir => match os.mkdir(&op.a, op.mode) {
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            },
            Kind::Touch => os.touch(&op.a, op.mode),
            Kind::Symlink => os.symlink(&op.b, &op.a),
            Kind::Tmpfs => os.mount(&op.b, &op.a, &op.b, nosuid, &op.data),
            Kind::Proc => os.mount(&op.b, &op.a, &op.b, nosuid | libc::MS_NOEXEC, NONE),
            Kind::Overlay => os.mount(&op.b, &op.a, &op.b, nosuid | libc::MS_RDONLY, &op.data),
            Kind::Device => os.mount(&op.a, &op.b, NONE, libc::MS_BIND, NONE),
            Kind::Bind { writable } => bind(os, &op.a, &op.b, writable),
        };
        result.map_err(|error| (index, error))?;
    }
    Ok(())
}

/// The real system calls.
/// A bind mount, nosuid and nodev, read-only unless `writable`.
pub fn bind(os: &mut impl Os, source: &CStr, target: &CStr, writable: bool) -> io::Result<()> {
    let bind = libc::MS_BIND | libc::MS_REC;
    os.mount(source, target, NONE, bind, NONE).and_then(|()| {
        // Bind mounts ignore flags on creation; a remount applies them.
        let mut flags = bind | libc::MS_REMOUNT | libc::MS_NOSUID | libc::MS_NODEV;
        if !writable {
            flags |= libc::MS_RDONLY;
        }
        os.mount(NONE, target, NONE, flags, NONE)
    })
}

pub struct RealOs;

fn check(result: libc::c_int) -> io::Result<()> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl Os for RealOs {
    fn mkdir(&mut self, path: &CStr, mode: u32) -> io::Result<()> {
        // SAFETY: `path` is a valid NUL-terminated string for the duration of the call.
        check(unsafe { libc::mkdir(path.as_ptr(), mode) })
    }

    fn touch(&mut self, path: &CStr, mode: u32) -> io::Result<()> {
        // SAFETY: as above; the returned descriptor is closed at once.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, mode) };
        check(fd)?;
        // SAFETY: `fd` was just opened by us. fchmod applies `mode` exactly, ignoring the umask.
        unsafe {
            libc::fchmod(fd, mode);
            libc::close(fd);
        }
        Ok(())
    }

    fn symlink(&mut self, points_to: &CStr, path: &CStr) -> io::Result<()> {
        // SAFETY: both are valid NUL-terminated strings.
        check(unsafe { libc::symlink(points_to.as_ptr(), path.as_ptr()) })
    }

    fn mount(
        &mut self,
        source: &CStr,
        target: &CStr,
        fstype: &CStr,
        flags: libc::c_ulong,
        data: &CStr,
    ) -> io::Result<()> {
        let optional = |s: &CStr| if s.is_empty() { std::ptr::null() } else { s.as_ptr() };
        // SAFETY: every pointer is either null or a valid NUL-terminated string; `data` is a
        // string option list as every filesystem used here expects.
        check(unsafe {
            libc::mount(optional(source), target.as_ptr(), optional(fstype), flags, optional(data).cast())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the calls instead of making them, failing the `fail_at`th mount.
    #[derive(Default)]
    struct Recorder {
        calls: Vec<String>,
        fail_at: Option<usize>,
        mounts: usize,
    }

    impl Os for Recorder {
        fn mkdir(&mut self, path: &CStr, _: u32) -> io::Result<()> {
            self.calls.push(format!("mkdir {}", path.to_string_lossy()));
            Ok(())
        }
        fn touch(&mut self, path: &CStr, mode: u32) -> io::Result<()> {
            self.calls.push(format!("touch {} {mode:o}", path.to_string_lossy()));
            Ok(())
        }
        fn symlink(&mut self, to: &CStr, path: &CStr) -> io::Result<()> {
            self.calls.push(format!("symlink {} -> {}", path.to_string_lossy(), to.to_string_lossy()));
            Ok(())
        }
        fn mount(
            &mut self,
            source: &CStr,
            target: &CStr,
            fstype: &CStr,
            flags: libc::c_ulong,
            data: &CStr,
        ) -> io::Result<()> {
            self.mounts += 1;
            if self.fail_at == Some(self.mounts) {
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
            let ro = flags & libc::MS_RDONLY != 0;
            self.calls.push(format!(
                "mount {} {} {} ro={ro} {}",
                source.to_string_lossy(),
                target.to_string_lossy(),
                fstype.to_string_lossy(),
                data.to_string_lossy()
            ));
            Ok(())
        }
    }

    #[test]
    fn read_only_binds_are_remounted_read_only() {
        let ops = prepare(&[Op::Bind { source: "/usr".into(), target: "/r/usr".into(), writable: false }]);
        let mut os = Recorder::default();
        apply(&ops, &mut os).unwrap();
        assert_eq!(os.calls, vec!["mount /usr /r/usr  ro=false ", "mount  /r/usr  ro=true "]);
    }

    #[test]
    fn tmpfs_gets_its_size_and_a_failure_names_the_op() {
        let ops = prepare(&[
            Op::Mkdir("/r/tmp".into()),
            Op::Tmpfs { target: "/r/tmp".into(), size_bytes: 1 << 20, mode: 0o1777 },
            Op::Proc("/r/proc".into()),
        ]);
        let mut os = Recorder { fail_at: Some(2), ..Recorder::default() };
        let (index, error) = apply(&ops, &mut os).unwrap_err();
        assert_eq!(index, 2);
        assert_eq!(error.raw_os_error(), Some(libc::EPERM));
        assert_eq!(os.calls[1], "mount tmpfs /r/tmp tmpfs ro=false size=1048576,mode=1777");
    }
}
