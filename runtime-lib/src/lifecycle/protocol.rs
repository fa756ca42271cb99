//! The sync channel between the runtime and its forked child (stage, init, exec'd process): a SOCK_SEQPACKET
//! socketpair carrying small binary messages (a tag byte and a payload), no JSON.

use std::borrow::Cow;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{recv, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};

/// A message of the create protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg<'a> {
    /// runtime → stage: begin. For create it is sent at once (the runtime makes the cgroup
    /// while the stage makes the namespaces); for exec once the stage is in the cgroup.
    Go,
    /// init → runtime: I unshared a user namespace; write my id maps.
    NeedMaps,
    /// runtime → init: the maps are written.
    MapsDone,
    /// init → runtime: my namespaces are made, and the container's init has this pid (in the
    /// runtime's pid namespace); 0 when the init is the process the runtime forked into a new
    /// pid namespace (where it is pid 1, and cannot name the pid the runtime sees).
    Pid(i32),
    /// runtime → init: the state documents for the hooks that run inside the container:
    /// (status created) — also the sign that the init is in its cgroup.
    State(Cow<'a, [u8]>),
    /// runtime → child: the container process state for the seccomp agent (JSON), sent after
    /// the child's pid is known when its filter notifies an agent.
    AgentState(Cow<'a, [u8]>),
    /// init → runtime: mounts are done, run the prestart and createRuntime hooks.
    RunHooks,
    /// runtime → init: the hooks ran.
    HooksDone,
    /// init → runtime: set up and about to wait for start.
    Ready,
    /// either way: this failed; the message says what.
    Error(Cow<'a, str>),
    /// init → runtime: open the source of bind mount number N of the config (which the
    /// init, in its user namespace, cannot reach) in my mount namespace, and send it.
    NeedMountSource(u32),
    /// runtime → init: that source, an O_PATH fd passed along with the message (or, for
    /// `NeedIdmappedTree`, the detached idmapped mount).
    MountSource,
    /// init → runtime: make the idmapped tree of bind mount number N of the config, from the
    /// source fd passed along (a source inside the rootfs) or else from its host path.
    NeedIdmappedTree(u32),
    /// runtime → init, before the state: join the cgroup yourself in these hierarchies, by
    /// writing `0` to each file named (paths, each ended by a NUL byte).
    JoinCgroup(Cow<'a, [u8]>),
}

impl Msg<'static> {
    /// [`Msg::JoinCgroup`] for `files`, or None when there is nothing to join.
    pub fn join_cgroup(files: &[std::path::PathBuf]) -> Option<Msg<'static>> {
        use std::os::unix::ffi::OsStrExt;
        let mut list = Vec::new();
        for f in files {
            list.extend_from_slice(f.as_os_str().as_bytes());
            list.push(0);
        }
        (!list.is_empty()).then(|| Msg::JoinCgroup(list.into()))
    }
}

/// The largest message: a state document with its annotations.
pub const MAX: usize = 256 * 1024;

impl<'a> Msg<'a> {
    /// The tag and fixed-size fields (`head`, the first `n` bytes of it) and the payload: sent
    /// as two pieces, so that a forked child encodes without allocating.
    fn wire(&self) -> ([u8; 5], usize, &[u8]) {
        let (tag, num, payload): (u8, Option<[u8; 4]>, &[u8]) = match self {
            Msg::Go => (1, None, &[]),
            Msg::NeedMaps => (2, None, &[]),
            Msg::MapsDone => (3, None, &[]),
            Msg::Pid(p) => (4, Some(p.to_le_bytes()), &[]),
            Msg::State(doc) => (5, None, doc),
            Msg::RunHooks => (6, None, &[]),
            Msg::HooksDone => (7, None, &[]),
            Msg::Ready => (8, None, &[]),
            Msg::Error(s) => (9, None, s.as_bytes()),
            Msg::AgentState(doc) => (10, None, doc),
            Msg::NeedMountSource(n) => (11, Some(n.to_le_bytes()), &[]),
            Msg::MountSource => (12, None, &[]),
            Msg::NeedIdmappedTree(n) => (13, Some(n.to_le_bytes()), &[]),
            Msg::JoinCgroup(paths) => (14, None, paths),
        };
        let mut head = [tag, 0, 0, 0, 0];
        let n = match num {
            Some(b) => {
                head[1..].copy_from_slice(&b);
                5
            }
            None => 1,
        };
        (head, n, payload)
    }

    /// The message in `b`, borrowing its payload.
    fn decode(b: &'a [u8]) -> Option<Msg<'a>> {
        let (&tag, rest) = b.split_first()?;
        let num = || <[u8; 4]>::try_from(rest.get(..4)?).ok();
        Some(match tag {
            1 => Msg::Go,
            2 => Msg::NeedMaps,
            3 => Msg::MapsDone,
            4 => Msg::Pid(i32::from_le_bytes(num()?)),
            5 => Msg::State(Cow::Borrowed(rest)),
            6 => Msg::RunHooks,
            7 => Msg::HooksDone,
            8 => Msg::Ready,
            9 => Msg::Error(String::from_utf8_lossy(rest)),
            10 => Msg::AgentState(Cow::Borrowed(rest)),
            11 => Msg::NeedMountSource(u32::from_le_bytes(num()?)),
            12 => Msg::MountSource,
            13 => Msg::NeedIdmappedTree(u32::from_le_bytes(num()?)),
            14 => Msg::JoinCgroup(Cow::Borrowed(rest)),
            _ => return None,
        })
    }

    /// The message with a payload of its own, for the runtime to keep.
    pub fn into_owned(self) -> Msg<'static> {
        match self {
            Msg::Go => Msg::Go,
            Msg::NeedMaps => Msg::NeedMaps,
            Msg::MapsDone => Msg::MapsDone,
            Msg::Pid(p) => Msg::Pid(p),
            Msg::State(d) => Msg::State(Cow::Owned(d.into_owned())),
            Msg::RunHooks => Msg::RunHooks,
            Msg::HooksDone => Msg::HooksDone,
            Msg::Ready => Msg::Ready,
            Msg::Error(e) => Msg::Error(Cow::Owned(e.into_owned())),
            Msg::AgentState(d) => Msg::AgentState(Cow::Owned(d.into_owned())),
            Msg::NeedMountSource(n) => Msg::NeedMountSource(n),
            Msg::MountSource => Msg::MountSource,
            Msg::NeedIdmappedTree(n) => Msg::NeedIdmappedTree(n),
            Msg::JoinCgroup(p) => Msg::JoinCgroup(Cow::Owned(p.into_owned())),
        }
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

    /// Send `msg`. Allocates nothing: forked children send with it.
    pub fn send(&self, msg: &Msg<'_>) -> Result<(), ChannelError> {
        self.send_with(msg, None)
    }

    /// Send `msg` with `fd` attached (SCM_RIGHTS).
    pub fn send_fd(&self, msg: &Msg<'_>, fd: BorrowedFd<'_>) -> Result<(), ChannelError> {
        self.send_with(msg, Some(fd))
    }

    fn send_with(&self, msg: &Msg<'_>, fd: Option<BorrowedFd<'_>>) -> Result<(), ChannelError> {
        let (head, n, payload) = msg.wire();
        loop {
            match crate::sys::send_parts(self.fd.as_fd(), &[&head[..n], payload], fd) {
                Ok(()) => return Ok(()),
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::EPIPE) | Err(nix::Error::ECONNRESET) => {
                    return Err(ChannelError::Closed)
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next message, with a payload of its own.
    pub fn recv(&self) -> Result<Msg<'static>, ChannelError> {
        self.recv_fd().map(|(msg, _)| msg)
    }

    /// Receive a message and the fd attached to it, if any (close-on-exec).
    pub fn recv_fd(&self) -> Result<(Msg<'static>, Option<OwnedFd>), ChannelError> {
        // A buffer of the message's own size: one of MAX bytes, zeroed afresh for each
        // message, cost a page fault for each of its pages.
        let mut buf = vec![0u8; self.next_len()?.max(1)];
        let (msg, fd) = self.recv_in(&mut buf)?;
        Ok((msg.into_owned(), fd))
    }

    /// The size of the next message, once there is one (0 once the peer is gone).
    fn next_len(&self) -> Result<usize, ChannelError> {
        loop {
            let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC;
            match recv(self.fd.as_raw_fd(), &mut [], flags) {
                Ok(n) => return Ok(n),
                Err(nix::Error::EINTR) => continue,
                Err(nix::Error::ECONNRESET) => return Err(ChannelError::Closed),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receive a message into `buf` (of [`MAX`] bytes), which its payload borrows, and the fd
    /// attached to it, if any. Allocates nothing: forked children receive with it.
    pub fn recv_in<'b>(
        &self,
        buf: &'b mut [u8],
    ) -> Result<(Msg<'b>, Option<OwnedFd>), ChannelError> {
        loop {
            match crate::sys::recv_with_fd(self.fd.as_fd(), buf) {
                Ok((0, _)) => return Err(ChannelError::Closed),
                Ok((n, fd)) => {
                    let buf: &'b [u8] = buf;
                    return Msg::decode(&buf[..n])
                        .map(|msg| (msg, fd))
                        .ok_or(ChannelError::Malformed);
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
                    Some(Msg::Error(e)) => return Some(e.into_owned()),
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
            Msg::State(b"{\"a\":1}".as_slice().into()),
            Msg::RunHooks,
            Msg::HooksDone,
            Msg::Ready,
            Msg::Error("mount proc on /proc: EPERM".into()),
            Msg::AgentState(b"{\"pid\":1}".as_slice().into()),
            Msg::NeedMountSource(3),
            Msg::MountSource,
            Msg::NeedIdmappedTree(7),
            Msg::JoinCgroup(b"/sys/fs/cgroup/pids/c/tasks\0".as_slice().into()),
        ];
        for m in &msgs {
            a.send(m).unwrap();
            assert_eq!(&b.recv().unwrap(), m);
        }
        // Received into a buffer of its own size, however large.
        let big = Msg::State(vec![b'x'; 100 * 1024].into());
        a.send(&big).unwrap();
        assert_eq!(b.recv().unwrap(), big);
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
