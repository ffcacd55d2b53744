//! Accept-queue depth of a listening TCP socket, as uWSGI reads it: for a
//! socket in LISTEN state, Linux's `TCP_INFO` reports the connections
//! waiting to be accepted as `tcpi_unacked` (and the backlog as
//! `tcpi_sacked`). One getsockopt per socket, whatever the connection count.

use std::os::fd::RawFd;

/// Connections waiting in the accept queue of the listening socket `fd`;
/// `None` for a unix socket or anything that is not a TCP listener.
pub(crate) fn listen_queue(fd: RawFd) -> Option<u32> {
    // SAFETY: tcp_info is plain data; getsockopt writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: as above; a bad or non-TCP fd only returns an error.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    // 10 is TCP_LISTEN in the kernel's state numbering.
    (rc == 0 && info.tcpi_state == 10).then_some(info.tcpi_unacked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn unaccepted_connections_are_counted() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        assert_eq!(listen_queue(listener.as_raw_fd()), Some(0));
        let _a = std::net::TcpStream::connect(addr).expect("connect");
        let _b = std::net::TcpStream::connect(addr).expect("connect");
        assert_eq!(listen_queue(listener.as_raw_fd()), Some(2));
        assert_eq!(listen_queue(_a.as_raw_fd()), None);
    }
}
