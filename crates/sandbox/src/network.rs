//! Every sandboxed environment's own network: a fresh network namespace with loopback up, in
//! which nimbus binds the listeners the environment may reach (its Runtime API, nimbus's own
//! API), so no environment can reach another's listeners or the host's loopback services and
//! abstract sockets. Unless the environment is cut off (a function in a VPC without NAT), a
//! slirp4netns process gives it a route to the outside world: a user-space TCP/IP stack that
//! opens the environment's outgoing connections as ordinary sockets on the host, with no
//! bridge, NAT rule or sysctl to change on the host. slirp takes ~5 ms to come up, so networks
//! are made ahead in a pool.

use std::io;
use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use crate::pool::{Maker, Pool};

/// Networks kept ready per kind.
const READY_PER_KIND: usize = 2;
/// Starting slirp takes a few ms of CPU; made at once, it slowed the cold start that took the
/// last ready network by ~3 ms on two cores. A burst of more than `READY_PER_KIND` cold starts
/// within this delay makes its networks on the spot (~6 ms each).
const REFILL_DELAY: std::time::Duration = std::time::Duration::from_millis(100);
/// The outside world as slirp4netns presents it: the host is `10.0.2.2`, and `10.0.2.3` relays
/// DNS to the host's own resolver.
pub const HOST_ADDRESS_INSIDE: &str = "10.0.2.2";
const DNS_INSIDE: &str = "10.0.2.3";

/// What an environment's network reaches besides its own listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reach {
    /// Nothing: a function in a VPC without a NAT gateway.
    Nothing,
    /// The outside world through slirp4netns (the host's own loopback stays out of reach unless
    /// nimbus was started with `host_loopback`).
    Outside,
}

/// The kind of network an environment asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NetworkKey {
    /// `host:port` addresses bound inside, e.g. the Runtime API's `127.0.0.1:9001`.
    pub addresses: Vec<String>,
    pub reach: Reach,
}

/// A network namespace and what serves inside it. Dropping it stops its slirp4netns; the
/// namespace goes when the last process in it and this descriptor are gone.
pub struct Network {
    pub namespace: Arc<OwnedFd>,
    /// One listener per [`NetworkKey::addresses`], in that order, until taken.
    listeners: Vec<TcpListener>,
    /// The resolver configuration to show as `/etc/resolv.conf`, when the host's names a
    /// loopback resolver (systemd-resolved's 127.0.0.53, dnsmasq …) that is out of reach here.
    pub resolv_conf: Option<PathBuf>,
    _relay: Option<Relay>,
}

impl Network {
    /// The listeners bound inside, in the order of [`NetworkKey::addresses`]. Keep the network
    /// itself as long as the environment lives: dropping it cuts the route outside.
    pub fn take_listeners(&mut self) -> Vec<TcpListener> {
        std::mem::take(&mut self.listeners)
    }
}

/// The slirp4netns process of one network. It exits when its exit pipe closes: when nimbus
/// drops the network, or when nimbus itself dies (even by kill -9).
struct Relay {
    child: Option<std::process::Child>,
    _exit: OwnedFd,
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The exit pipe closes after this; slirp notices within a few ms. Reap it aside.
            std::thread::spawn(move || {
                let _ = child.wait();
            });
        }
    }
}

/// Networks for environments, made ahead.
#[derive(Clone)]
pub struct Networks {
    pool: Arc<Pool<NetworkMaker>>,
}

struct NetworkMaker {
    /// Where slirp4netns is installed, if it is.
    slirp: Option<PathBuf>,
    host_loopback: bool,
    /// See [`Network::resolv_conf`]; written once, at start.
    resolv_conf: Option<PathBuf>,
    /// Set when slirp4netns would not start: said once, and in health.
    relay_failed: std::sync::atomic::AtomicBool,
}

impl Networks {
    /// `dir` (under the data directory) holds the rewritten resolver configuration, if needed.
    pub fn new(host_loopback: bool, dir: &std::path::Path) -> Networks {
        let slirp = find_program("slirp4netns");
        let host_resolv = std::fs::read_to_string(crate::plan::RESOLV_CONF).unwrap_or_default();
        let resolv_conf = resolver_through_relay(&host_resolv).and_then(|text| {
            let path = dir.join("resolv.conf");
            std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, text)).ok().map(|()| path)
        });
        let maker = NetworkMaker { slirp, host_loopback, resolv_conf, relay_failed: Default::default() };
        Networks { pool: Arc::new(Pool::new(maker, READY_PER_KIND, REFILL_DELAY)) }
    }

    /// Whether environments that should reach the outside world can (slirp4netns is installed).
    pub fn reaches_outside(&self) -> bool {
        let maker = &self.pool.maker;
        maker.slirp.is_some() && !maker.relay_failed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// A fresh network of `key`'s kind, made ahead when one is ready. Blocking.
    pub fn take(&self, key: &NetworkKey) -> io::Result<Network> {
        self.pool.take(key)
    }

    /// Stops every network made ahead (at shutdown).
    pub fn close(&self) {
        self.pool.close();
    }
}

impl Maker for NetworkMaker {
    type Key = NetworkKey;
    type Item = Network;

    fn make(&self, key: &NetworkKey) -> io::Result<Network> {
        let (namespace, listeners) = namespace_with_listeners(&key.addresses)?;
        let relay = match (key.reach, &self.slirp) {
            (Reach::Outside, Some(slirp)) => match self.start_relay(slirp, &namespace) {
                Ok(relay) => Some(relay),
                // E.g. no /dev/net/tun: the environment still runs, cut off, and nimbus says so.
                Err(error) => {
                    if !self.relay_failed.swap(true, std::sync::atomic::Ordering::AcqRel) {
                        eprintln!("nimbus: slirp4netns failed ({error}); environments have no route outside");
                    }
                    None
                }
            },
            _ => None,
        };
        let resolv_conf = relay.as_ref().and(self.resolv_conf.clone());
        Ok(Network { namespace: Arc::new(namespace), listeners, resolv_conf, _relay: relay })
    }

    fn unmake(&self, network: Network) {
        drop(network);
    }
}

impl NetworkMaker {
    /// Starts slirp4netns on `namespace` and waits until it has configured the interface.
    fn start_relay(&self, slirp: &PathBuf, namespace: &OwnedFd) -> io::Result<Relay> {
        let (ready_read, ready_write) = pipe()?;
        let (exit_read, exit_write) = pipe()?;
        let mut command = Command::new(slirp);
        // slirp opens the namespace by path; nimbus's own descriptor is one it may open.
        let path = format!("/proc/{}/fd/{}", std::process::id(), namespace.as_raw_fd());
        command.args(["--configure", "--mtu=65520", "--enable-sandbox", "--enable-seccomp"]).args([
            "--netns-type=path",
            "--ready-fd=3",
            "--exit-fd=4",
        ]);
        if !self.host_loopback {
            command.arg("--disable-host-loopback");
        }
        command.arg(path).arg("tap0").stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
        let (ready_fd, exit_fd) = (ready_write.as_raw_fd(), exit_read.as_raw_fd());
        // No PR_SET_PDEATHSIG: it fires when the *thread* that started slirp ends (pool threads
        // are short-lived); the exit pipe closes when nimbus ends, however it ends.
        // SAFETY: between fork and exec only async-signal-safe calls (fcntl, dup2) are made.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(move || {
                // Out of the way first, in case either already is 3 or 4.
                let ready = libc::fcntl(ready_fd, libc::F_DUPFD, 10);
                let exit = libc::fcntl(exit_fd, libc::F_DUPFD, 10);
                if ready < 0 || exit < 0 || libc::dup2(ready, 3) < 0 || libc::dup2(exit, 4) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn()?;
        drop((ready_write, exit_read));
        let relay = Relay { child: Some(child), _exit: exit_write };
        // slirp writes one byte once the interface is up, or closes the pipe on failure.
        let mut byte = [0u8; 1];
        let mut ready = std::fs::File::from(ready_read);
        match io::Read::read(&mut ready, &mut byte) {
            Ok(1) => {
                // Started at the pool's idle priority; it carries the environment's traffic at
                // the ordinary one.
                let pid = relay.child.as_ref().map_or(0, std::process::Child::id);
                // SAFETY: setpriority on our own child's pid; failure leaves it niced.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, pid, 0) };
                Ok(relay)
            }
            Ok(_) => Err(io::Error::other("slirp4netns exited before the network was up")),
            Err(error) => Err(error),
        }
    }
}

/// The host's resolver configuration with loopback name servers (unreachable from an
/// environment's own network) replaced by slirp's DNS relay; `None` when none is loopback.
fn resolver_through_relay(host: &str) -> Option<String> {
    let loopback = |line: &str| {
        let mut words = line.split_whitespace();
        words.next() == Some("nameserver")
            && words.next().and_then(|a| a.parse::<std::net::IpAddr>().ok()).is_some_and(|a| a.is_loopback())
    };
    if !host.lines().any(loopback) {
        return None;
    }
    let mut text: String = host
        .lines()
        .filter(|line| !line.trim_start().starts_with("nameserver"))
        .map(|l| format!("{l}\n"))
        .collect();
    text.push_str(&format!("nameserver {DNS_INSIDE}\n"));
    Some(text)
}

/// Creates a network namespace with loopback up and binds `addresses` inside it.
pub fn namespace_with_listeners(addresses: &[String]) -> io::Result<(OwnedFd, Vec<TcpListener>)> {
    let addresses = addresses.to_vec();
    // unshare affects only the calling thread, so a short-lived thread does it and dies.
    std::thread::spawn(move || -> io::Result<(OwnedFd, Vec<TcpListener>)> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
        loopback_up()?;
        let listeners = addresses.iter().map(TcpListener::bind).collect::<io::Result<Vec<_>>>()?;
        let namespace = std::fs::File::open("/proc/thread-self/ns/net")?;
        Ok((OwnedFd::from(namespace), listeners))
    })
    .join()
    .map_err(|_| io::Error::other("network namespace thread panicked"))?
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The first `name` on the usual system paths (nimbus's own `PATH` may be a user's).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `ip link set lo up`, with the ioctl it uses.
fn loopback_up() -> io::Result<()> {
    // SAFETY: a datagram socket used only for the two ioctls below and closed at the end; the
    // ifreq is zeroed and its name is a NUL-terminated "lo".
    unsafe {
        let socket = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if socket < 0 {
            return Err(io::Error::last_os_error());
        }
        let socket = OwnedFd::from_raw_fd(socket);
        let mut request: libc::ifreq = std::mem::zeroed();
        request.ifr_name[0] = b'l' as libc::c_char;
        request.ifr_name[1] = b'o' as libc::c_char;
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) < 0 {
            return Err(io::Error::last_os_error());
        }
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_resolvers_are_replaced_by_the_relay() {
        let stub = "# systemd\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";
        assert_eq!(
            resolver_through_relay(stub).unwrap(),
            "# systemd\noptions edns0 trust-ad\nsearch lan\nnameserver 10.0.2.3\n"
        );
        assert_eq!(resolver_through_relay("nameserver ::1\n").unwrap(), "nameserver 10.0.2.3\n");
        // A resolver elsewhere is reached through the relay as it is.
        assert_eq!(resolver_through_relay("nameserver 10.255.255.53\nsearch x\n"), None);
        assert_eq!(resolver_through_relay(""), None);
    }
}
