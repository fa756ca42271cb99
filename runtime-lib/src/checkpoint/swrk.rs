//! CRIU's RPC, as runc and crun speak it: `criu swrk FD` is started with one end of a
//! SOCK_SEQPACKET socketpair as FD; the runtime sends one request (a protobuf `criu_req`, one
//! message per packet) and reads responses until the one of the request's type. On the way
//! CRIU sends notifications (`criu_resp` of type NOTIFY, some with an fd) at the points where
//! the runtime has work to do (run hooks, learn the restored pid, receive a terminal's
//! master); each is acknowledged before CRIU goes on. The protobuf types are those generated
//! by the `rust-criu` crate.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType,
};
use protobuf::Message;
use rust_criu::rust_criu_protobuf::rpc::{
    Criu_notify, Criu_opts, Criu_req, Criu_req_type, Criu_resp,
};

use super::CheckpointError;

/// CRIU's oldest version this runtime talks to (as runc: 3.0), as major*10000+minor*100+sub.
const MIN_VERSION: u32 = 30000;

/// What the request's CRIU inherits besides the socket: the runtime's stdio (restore maps the
/// container's pipes onto them) or nothing, and fds kept at their numbers (`inherit_fd`).
pub(super) struct SwrkIo<'a> {
    /// The CRIU binary (`criu` in `PATH` when `None`, as runc looks for it).
    pub criu: Option<&'a Path>,
    pub stdio: bool,
    pub keep: &'a [RawFd],
}

/// What the runtime does at a notification (with the fd that came with it, if any); its
/// error fails the request.
pub(super) type Notify<'a> = dyn FnMut(&Criu_notify, Option<OwnedFd>) -> Result<(), String> + 'a;

/// A running `criu swrk` and our end of its socket.
pub(super) struct Swrk {
    child: Child,
    sock: OwnedFd,
}

impl Swrk {
    /// Start `criu swrk`.
    pub(super) fn start(io: &SwrkIo<'_>) -> Result<Swrk, CheckpointError> {
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(CheckpointError::sys("socketpair for criu swrk"))?;
        // CRIU gets its end (and the kept fds) at their numbers: they are made inheritable
        // for the spawn only. (A fork by another thread of a program linking the crate
        // meanwhile inherits them too; it cannot use them, and they close with it.)
        for fd in std::iter::once(theirs.as_raw_fd()).chain(io.keep.iter().copied()) {
            crate::sys::clear_cloexec(fd).map_err(CheckpointError::sys("pass an fd to criu"))?;
        }
        let criu = io.criu.unwrap_or(Path::new("criu"));
        let mut cmd = Command::new(criu);
        cmd.arg("swrk").arg(theirs.as_raw_fd().to_string());
        if !io.stdio {
            cmd.stdin(Stdio::null()).stdout(Stdio::null());
        }
        let spawned = cmd.spawn();
        for &fd in io.keep {
            let _ = crate::sys::set_cloexec(fd);
        }
        drop(theirs);
        let child =
            spawned.map_err(|e| CheckpointError::NoCriu(format!("run {}: {e}", criu.display())))?;
        Ok(Swrk { child, sock: ours })
    }

    /// CRIU's pid (restore moves it into the container's cgroup first).
    pub(super) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Stop CRIU without a request (the caller could not go on): kill it and reap it.
    pub(super) fn abandon(mut self) {
        let _ = self.child.kill();
        drop(self.sock);
        let _ = self.child.wait();
    }

    /// Send `req`, answer CRIU's notifications with `notify` (its error fails the request),
    /// and return the response of `req`'s type. CRIU has exited when this returns.
    pub(super) fn call(
        mut self,
        req: &Criu_req,
        notify: &mut Notify<'_>,
    ) -> Result<Criu_resp, CheckpointError> {
        let r = self.exchange(req, notify);
        if r.is_err() {
            let _ = self.child.kill();
        }
        drop(self.sock);
        let _ = self.child.wait();
        r
    }

    fn exchange(
        &mut self,
        req: &Criu_req,
        notify: &mut Notify<'_>,
    ) -> Result<Criu_resp, CheckpointError> {
        self.send(req)?;
        let want = req.type_();
        loop {
            let (resp, fd) = self.recv()?;
            let typ = resp.type_();
            if typ == Criu_req_type::NOTIFY {
                let result = notify(&resp.notify, fd);
                let mut ack = Criu_req::new();
                ack.set_type(Criu_req_type::NOTIFY);
                ack.set_notify_success(result.is_ok());
                self.send(&ack)?;
                if let Err(msg) = result {
                    return Err(CheckpointError::Notify {
                        script: resp.notify.script().to_string(),
                        msg,
                    });
                }
                continue;
            }
            if typ != want {
                return Err(CheckpointError::Rpc(format!(
                    "criu answered {typ:?} to a {want:?} request"
                )));
            }
            return Ok(resp);
        }
    }

    fn send(&self, req: &Criu_req) -> Result<(), CheckpointError> {
        let bytes = req
            .write_to_bytes()
            .map_err(|e| CheckpointError::Rpc(format!("encode request: {e}")))?;
        sendmsg::<()>(
            self.sock.as_raw_fd(),
            &[IoSlice::new(&bytes)],
            &[],
            MsgFlags::MSG_NOSIGNAL,
            None,
        )
        .map_err(CheckpointError::sys("send to criu"))?;
        Ok(())
    }

    fn recv(&self) -> Result<(Criu_resp, Option<OwnedFd>), CheckpointError> {
        // CRIU's messages are small; runc reads them into 40 KiB.
        let mut buf = vec![0u8; 64 * 1024];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(
            self.sock.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(CheckpointError::sys("receive from criu"))?;
        if msg
            .flags
            .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC)
        {
            return Err(CheckpointError::Rpc(
                "a message from criu was truncated".into(),
            ));
        }
        let mut fd = None;
        for c in msg
            .cmsgs()
            .map_err(CheckpointError::sys("criu's control message"))?
        {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for f in fds {
                    // Received just now: ours alone. Beyond the first, closed at once.
                    let owned = crate::sys::received_fd(f);
                    fd.get_or_insert(owned);
                }
            }
        }
        let n = msg.bytes;
        if n == 0 {
            return Err(CheckpointError::Rpc(
                "criu closed the connection (it died: see its log)".into(),
            ));
        }
        let resp = Criu_resp::parse_from_bytes(&buf[..n])
            .map_err(|e| CheckpointError::Rpc(format!("decode criu's answer: {e}")))?;
        Ok((resp, fd))
    }
}

/// CRIU's version, checked to be one this runtime talks to.
pub(super) fn check_version(criu: Option<&Path>) -> Result<u32, CheckpointError> {
    let mut req = Criu_req::new();
    req.set_type(Criu_req_type::VERSION);
    let resp = Swrk::start(&SwrkIo {
        criu,
        stdio: false,
        keep: &[],
    })?
    .call(&req, &mut |_, _| Ok(()))
    .map_err(|e| CheckpointError::NoCriu(format!("ask criu its version: {e}")))?;
    let v = &resp.version;
    let mut n =
        (v.major_number() as u32) * 10000 + (v.minor_number() as u32) * 100 + v.sublevel() as u32;
    if v.has_gitid() {
        // A build from git is newer than its release (runc counts it so too).
        n = n - n % 100 + 100;
    }
    if n < MIN_VERSION {
        return Err(CheckpointError::NoCriu(format!(
            "criu {}.{}.{} is too old: 3.0 or later is needed",
            v.major_number(),
            v.minor_number(),
            v.sublevel()
        )));
    }
    Ok(n)
}

/// A request of `typ` with `opts`.
pub(super) fn request(typ: Criu_req_type, opts: Criu_opts) -> Criu_req {
    let mut req = Criu_req::new();
    req.set_type(typ);
    req.opts = protobuf::MessageField::some(opts);
    req
}

/// Our fd for CRIU to open: it resolves `images_dir_fd` and `work_dir_fd` as
/// /proc/<our pid>/fd/N, so these stay ours (close-on-exec).
pub(super) fn raw(fd: &impl AsFd) -> i32 {
    fd.as_fd().as_raw_fd()
}
