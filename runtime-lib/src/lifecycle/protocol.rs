//! The sync channel between the runtime and its forked child (stage, init, exec'd process): a SOCK_SEQPACKET
//! socketpair carrying small binary messages (a tag byte and a payload), no JSON.

use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{
    recv, send, sendmsg, socketpair, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};

/// A message of the create protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// runtime → stage: begin. For create it is sent at once (the runtime makes the cgroup
    /// while the stage makes the namespaces); for exec once the stage is in the cgroup.
    Go,
    /// init → runtime: I unshared a user namespace; write my id maps.
    NeedMaps,
    /// runtime → init: the maps are written.
    MapsDone,
    /// init → runtime: the container's init has this pid (in the runtime's pid namespace).
    Pid(i32),
    /// runtime → init: the state documents for the hooks that run inside the container:
    /// (status created) — also the sign that the init is in its cgroup.
    State(Vec<u8>),
    /// runtime → child: the container process state for the seccomp agent (JSON), sent after
    /// the child's pid is known when its filter notifies an agent.
    AgentState(Vec<u8>),
    /// init → runtime: mounts are done, run the prestart and createRuntime hooks.
    RunHooks,
    /// runtime → init: the hooks ran.
    HooksDone,
    /// init → runtime: set up and about to wait for start.
    Ready,
    /// either way: this failed; the message says what.
    Error(String),
    /// init → runtime: open the source of bind mount number N of the config (which the
    /// init, in its user namespace, cannot reach) in my mount namespace, and send it.
    NeedMountSource(u32),
    /// runtime → init: that source, an O_PATH fd passed along with the message (or, for
    /// `NeedIdmappedTree`, the detached idmapped mount).
    MountSource,
    /// init → runtime: make the idmapped tree of bind mount number N of the config, from the
    /// source fd passed along (a source inside the rootfs) or else from its host path.
    NeedIdmappedTree(u32),
}

const MAX: usize = 256 * 1024;

impl Msg {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Msg::Go => out.push(1),
            Msg::NeedMaps => out.push(2),
            Msg::MapsDone => out.push(3),
            Msg::Pid(p) => {
                out.push(4);
                out.extend_from_slice(&p.to_le_bytes());
            }
            Msg::State(doc) => {
                out.push(5);
                out.extend_from_slice(doc);
            }
            Msg::RunHooks => out.push(6),
            Msg::HooksDone => out.push(7),
            Msg::Ready => out.push(8),
            Msg::Error(s) => {
                out.push(9);
                out.extend_from_slice(s.as_bytes());
            }
            Msg::AgentState(doc) => {
                out.push(10);
                out.extend_from_slice(doc);
            }
            Msg::NeedMountSource(n) => {
                out.push(11);
                out.extend_from_slice(&n.to_le_bytes());
            }
            Msg::MountSource => out.push(12),
            Msg::NeedIdmappedTree(n) => {
                out.push(13);
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
        out
    }

    fn decode(b: &[u8]) -> Option<Msg> {
        let (&tag, rest) = b.split_first()?;
        Some(match tag {
            1 => Msg::Go,
            2 => Msg::NeedMaps,
            3 => Msg::MapsDone,
            4 => Msg::Pid(i32::from_le_bytes(rest.get(..4)?.try_into().ok()?)),
            5 => Msg::State(rest.to_vec()),
            6 => Msg::RunHooks,
            7 => Msg::HooksDone,
            8 => Msg::Ready,
            9 => Msg::Error(String::from_utf8_lossy(rest).into_owned()),
            10 => Msg::AgentState(rest.to_vec()),
            11 => Msg::NeedMountSource(u32::from_le_bytes(rest.get(..4)?.try_into().ok()?)),
            12 => Msg::MountSource,
            13 => Msg::NeedIdmappedTree(u32::from_le_bytes(rest.get(..4)?.try_into().ok()?)),
            _ => return None,
        })
    }
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// What went wrong on the channel.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("sync channel: the other side closed it")]
    Closed,
    #[error("sync channel: malformed message")]
    Malformed,
    #[error("sync channel: {0}")]
    Sys(#[from] nix::Error),
}

/// A connected pair: (runtime end, init end). Both are close-on-exec.
pub fn pair() -> nix::Result<(Channel, Channel)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    /// The raw fd, for the forked child to close the runtime's end.
    pub fn as_raw(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    pub fn send(&self, msg: &Msg) -> Result<(), ChannelError> {
        let bytes = msg.encode();
        loop {
            match send(self.fd.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::EPIPE) | Err(nix::Error::ECONNRESET) => {
                    return Err(ChannelError::Closed)
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub fn recv(&self) -> Result<Msg, ChannelError> {
        let mut buf = vec![0u8; MAX];
        loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) => return Err(ChannelError::Closed),
                Ok(n) => return Msg::decode(&buf[..n]).ok_or(ChannelError::Malformed),
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::ECONNRESET) => return Err(ChannelError::Closed),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Send `msg` with `fd` attached (SCM_RIGHTS).
    pub fn send_fd(&self, msg: &Msg, fd: BorrowedFd<'_>) -> Result<(), ChannelError> {
        let bytes = msg.encode();
        let fds = [fd.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        loop {
            match sendmsg::<()>(
                self.fd.as_raw_fd(),
                &[IoSlice::new(&bytes)],
                &cmsg,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(_) => return Ok(()),
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::EPIPE) | Err(nix::Error::ECONNRESET) => {
                    return Err(ChannelError::Closed)
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receive a message and the fd attached to it, if any (close-on-exec).
    pub fn recv_fd(&self) -> Result<(Msg, Option<OwnedFd>), ChannelError> {
        let mut buf = vec![0u8; MAX];
        loop {
            match crate::sys::recv_with_fd(self.fd.as_fd(), &mut buf) {
                Ok((0, _)) => return Err(ChannelError::Closed),
                Ok((n, fd)) => {
                    return Msg::decode(&buf[..n])
                        .map(|msg| (msg, fd))
                        .ok_or(ChannelError::Malformed)
                }
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::ECONNRESET) => return Err(ChannelError::Closed),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// An error report the other side sent and we have not read yet, without waiting. When a
    /// step of the runtime fails because the init is gone (a send finds the channel closed, a
    /// cgroup write finds no such process), the init's report is the real cause.
    pub fn pending_error(&self) -> Option<String> {
        let mut buf = vec![0u8; MAX];
        loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) if n > 0 => match Msg::decode(&buf[..n]) {
                    Some(Msg::Error(e)) => return Some(e),
                    Some(_) => continue,
                    None => return None,
                },
                Err(nix::Error::EINTR) => continue,
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_error_is_read_after_the_other_side_closed() {
        let (a, b) = pair().unwrap();
        assert_eq!(
            a.pending_error(),
            None,
            "nothing sent yet: no wait, no error"
        );
        b.send(&Msg::Pid(7)).unwrap();
        b.send(&Msg::Error("mount /proc: EPERM".into())).unwrap();
        drop(b);
        assert!(matches!(a.send(&Msg::Go), Err(ChannelError::Closed)));
        assert_eq!(a.pending_error().as_deref(), Some("mount /proc: EPERM"));
        assert_eq!(a.pending_error(), None);
    }

    #[test]
    fn round_trip() {
        let (a, b) = pair().unwrap();
        let msgs = [
            Msg::Go,
            Msg::NeedMaps,
            Msg::MapsDone,
            Msg::Pid(4242),
            Msg::State(b"{\"a\":1}".to_vec()),
            Msg::RunHooks,
            Msg::HooksDone,
            Msg::Ready,
            Msg::Error("mount proc on /proc: EPERM".into()),
            Msg::AgentState(b"{\"pid\":1}".to_vec()),
            Msg::NeedMountSource(3),
            Msg::MountSource,
            Msg::NeedIdmappedTree(7),
        ];
        for m in &msgs {
            a.send(m).unwrap();
            assert_eq!(&b.recv().unwrap(), m);
        }
        drop(a);
        assert!(matches!(b.recv(), Err(ChannelError::Closed)));
    }

    #[test]
    fn fd_passing() {
        let (a, b) = pair().unwrap();
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        a.send_fd(&Msg::MountSource, file.as_fd()).unwrap();
        let (msg, fd) = b.recv_fd().unwrap();
        assert_eq!(msg, Msg::MountSource);
        let fd = fd.expect("an fd came along");
        let ours = nix::sys::stat::fstat(file.as_fd()).unwrap();
        let theirs = nix::sys::stat::fstat(fd.as_fd()).unwrap();
        assert_eq!((ours.st_dev, ours.st_ino), (theirs.st_dev, theirs.st_ino));
        a.send(&Msg::Go).unwrap();
        assert!(matches!(b.recv_fd().unwrap(), (Msg::Go, None)));
    }

    #[test]
    fn malformed() {
        assert_eq!(Msg::decode(&[]), None);
        assert_eq!(Msg::decode(&[4, 1]), None);
        assert_eq!(Msg::decode(&[77]), None);
    }
}
