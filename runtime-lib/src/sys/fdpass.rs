//! Passing an fd over a unix socket (SCM_RIGHTS): the pty master to the console socket, the
//! seccomp listener to its agent.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Send all of `data` over the unix socket `socket`, with `fd` attached (SCM_RIGHTS) to the
/// first sendmsg(2); a stream socket that takes part of the bytes gets the rest in further
/// sendmsg calls without fds (the only syscall made). `data` must not be empty: a stream socket
/// carries no fd without a byte.
pub fn send_with_fd(socket: BorrowedFd<'_>, data: &[u8], fd: BorrowedFd<'_>) -> Result<(), Errno> {
    if data.is_empty() {
        return Err(Errno::EINVAL);
    }
    let fds = [fd.as_raw_fd()];
    let mut sent = loop {
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let iov = [io::IoSlice::new(data)];
        match sendmsg::<()>(
            socket.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(n) => break n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    };
    // sendmsg again rather than send: a seccomp filter just loaded may hand send(2)'s syscall
    // to the agent that is still waiting for the end of these bytes.
    while sent < data.len() {
        let iov = [io::IoSlice::new(&data[sent..])];
        match sendmsg::<()>(socket.as_raw_fd(), &iov, &[], MsgFlags::MSG_NOSIGNAL, None) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => sent += n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Why [`recv_one_fd`] got no fd.
#[derive(Debug, thiserror::Error)]
pub enum RecvFdError {
    #[error("{0}")]
    Recv(Errno),
    #[error("control messages: {0}")]
    ControlMessages(Errno),
    #[error("control data truncated (too many fds sent)")]
    Truncated,
    #[error("the peer closed the connection without sending a file descriptor")]
    Closed,
    #[error("expected exactly one file descriptor in the message")]
    NotOne,
}

/// Receive one fd (close-on-exec) and the message bytes sent with it, at most `max` of them.
pub fn recv_one_fd(socket: BorrowedFd<'_>, max: usize) -> Result<(OwnedFd, Vec<u8>), RecvFdError> {
    let mut data = vec![0u8; max];
    let mut cmsg_buf = nix::cmsg_space!([RawFd; 4]);
    let (len, fds, flags) = loop {
        let mut iov = [io::IoSliceMut::new(&mut data)];
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_buf),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fds: Vec<OwnedFd> = Vec::new();
                for c in msg.cmsgs().map_err(RecvFdError::ControlMessages)? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // The kernel installed these fds in our table for this message.
                        fds.extend(raw.into_iter().map(super::tty::own_received_fd));
                    }
                }
                break (msg.bytes, fds, msg.flags);
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(RecvFdError::Recv(e)),
        }
    };
    if flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(RecvFdError::Truncated);
    }
    if len == 0 && fds.is_empty() {
        return Err(RecvFdError::Closed);
    }
    let mut fds = fds.into_iter();
    let (Some(fd), None) = (fds.next(), fds.next()) else {
        return Err(RecvFdError::NotOne);
    };
    data.truncate(len);
    Ok((fd, data))
}
