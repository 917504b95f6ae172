//! A private switch between environments' own networks (the nodes of one Batch multi-node
//! parallel job, each in its instance's namespace): a bridge in a network namespace of its
//! own, and per member a veth pair — one end on the bridge, the other moved into the member's
//! namespace with the member's address. Members reach each other at those addresses; nothing
//! else is on the switch (the host's namespace holds no end of it), so no other environment
//! reaches them this way. Dropping the switch removes its namespace, and with it every veth
//! pair (a veth goes when either end's namespace goes).
//!
//! Links are configured with iproute2's `ip`, run inside the namespace it acts on; that needs
//! CAP_NET_ADMIN over the namespaces (root).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::network::namespace_with_listeners;

/// The interface a member sees inside its namespace.
pub const MEMBER_INTERFACE: &str = "mnp0";

pub struct Switch {
    namespace: OwnedFd,
    members: AtomicU32,
}

impl Switch {
    /// A switch with no member yet. Blocking (a few `ip` runs).
    pub fn new() -> io::Result<Switch> {
        let (namespace, _) = namespace_with_listeners(&[])?;
        let switch = Switch { namespace, members: AtomicU32::new(0) };
        switch.ip_in(&switch.namespace, &["link", "add", "br0", "type", "bridge"])?;
        switch.ip_in(&switch.namespace, &["link", "set", "br0", "up"])?;
        Ok(switch)
    }

    /// Puts the namespace `member` on the switch with `address` (`a.b.c.d/prefix`) on its
    /// [`MEMBER_INTERFACE`]. Blocking.
    pub fn join(&self, member: &OwnedFd, address: &str) -> io::Result<()> {
        let n = self.members.fetch_add(1, Ordering::Relaxed);
        // Named apart while both ends are here (members may join at the same time), renamed in
        // the member's namespace.
        let (port, end) = (format!("port{n}"), format!("end{n}"));
        let here = &self.namespace;
        self.ip_in(here, &["link", "add", &port, "type", "veth", "peer", "name", &end])?;
        self.ip_in(here, &["link", "set", &end, "netns", &fd_path(member)])?;
        self.ip_in(here, &["link", "set", &port, "master", "br0", "up"])?;
        self.ip_in(member, &["link", "set", &end, "name", MEMBER_INTERFACE])?;
        self.ip_in(member, &["addr", "add", address, "dev", MEMBER_INTERFACE])?;
        self.ip_in(member, &["link", "set", MEMBER_INTERFACE, "up"])
    }

    /// Runs `ip ARGS` inside the network namespace `namespace`.
    fn ip_in(&self, namespace: &OwnedFd, args: &[&str]) -> io::Result<()> {
        let mut command =
            Command::new(ip_program().ok_or_else(|| io::Error::other("iproute2's ip is not installed"))?);
        command.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        let fd = namespace.as_raw_fd();
        // SAFETY: setns(2) is async-signal-safe; it changes only the child's own namespace.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let output = command.output()?;
        if output.status.success() {
            return Ok(());
        }
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// A path naming an open namespace descriptor of this process (what `ip … netns PATH` opens).
fn fd_path(namespace: &OwnedFd) -> String {
    format!("/proc/{}/fd/{}", std::process::id(), namespace.as_raw_fd())
}

fn ip_program() -> Option<std::path::PathBuf> {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .map(std::path::PathBuf::from)
        .into_iter()
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Two namespaces on one switch reach each other at their addresses; a third, not on it,
    /// does not.
    #[test]
    fn members_reach_each_other_and_nothing_else_does() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 || ip_program().is_none() {
            eprintln!("skipped: a switch needs root (CAP_NET_ADMIN) and iproute2's ip");
            return;
        }
        let (a, mut listeners) = namespace_with_listeners(&["0.0.0.0:0".to_owned()]).unwrap();
        let listener = listeners.pop().unwrap();
        let port = listener.local_addr().unwrap().port();
        let (b, _) = namespace_with_listeners(&[]).unwrap();
        let (outsider, _) = namespace_with_listeners(&[]).unwrap();
        let switch = Switch::new().unwrap();
        // Members join at the same time (a job's nodes start together).
        std::thread::scope(|scope| {
            let first = scope.spawn(|| switch.join(&a, "172.31.9.10/16"));
            switch.join(&b, "172.31.9.11/16").unwrap();
            first.join().unwrap().unwrap();
        });
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut text = String::new();
            stream.read_to_string(&mut text).unwrap();
            text
        });
        let connect_from = |namespace: &OwnedFd| {
            let fd = namespace.as_raw_fd();
            std::thread::scope(|scope| {
                scope
                    .spawn(move || {
                        // SAFETY: setns on this short-lived thread only.
                        assert_eq!(unsafe { libc::setns(fd, libc::CLONE_NEWNET) }, 0);
                        let address = format!("172.31.9.10:{port}").parse().unwrap();
                        std::net::TcpStream::connect_timeout(&address, std::time::Duration::from_secs(2))
                    })
                    .join()
                    .unwrap()
            })
        };
        assert!(connect_from(&outsider).is_err(), "a namespace off the switch reached a member");
        let mut stream = connect_from(&b).expect("a member reaches another");
        stream.write_all(b"hello from b").unwrap();
        drop(stream);
        assert_eq!(server.join().unwrap(), "hello from b");
    }
}
