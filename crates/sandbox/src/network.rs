//! Isolated networks: a fresh network namespace with only loopback up, in which nimbus binds
//! the listeners a function may reach (its Runtime API, nimbus's own API).

use std::io;
use std::net::TcpListener;
use std::os::fd::{FromRawFd, OwnedFd};

/// Creates a network namespace and binds `addresses` inside it. Returns the namespace (for
/// [`crate::Spec::netns`]) and the listeners, which keep serving inside it.
pub fn isolated_network(addresses: &[String]) -> io::Result<(OwnedFd, Vec<TcpListener>)> {
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
        use std::os::fd::AsRawFd;
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
