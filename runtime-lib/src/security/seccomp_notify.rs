//! The seccomp agent of `linux.seccomp.listenerPath`: the process that answers the syscalls a
//! filter sends it with SCMP_ACT_NOTIFY.
//!
//! The runtime connects to the agent's unix stream socket before it forks ([`connect`]): the
//! container process cannot reach a host path once inside its root. It builds the "container
//! process state" ([`process_state`]) once it knows the process's pid and sends it to the
//! child over the sync channel. The child loads its filter, which yields the listener, and
//! [`hand_over`] sends that document with the listener attached (SCM_RIGHTS, the only entry of
//! `fds`, named `seccompFd`), then closes both the connection (one state per connection, as
//! the spec requires) and its copy of the listener: the agent owns it from then on.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::Path;

use serde::Serialize;

use super::SecurityError;
use crate::state::State;

/// The name of the listener in the `fds` array.
pub const SECCOMP_FD_NAME: &str = "seccompFd";

/// The container process state of the runtime-spec, as sent to the agent.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProcessState<'a> {
    oci_version: &'a str,
    fds: [&'a str; 1],
    pid: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a str>,
    state: &'a State,
}

/// The container process state for the process `pid` (as the runtime sees it) of the
/// container in `state`, with the agent's `metadata` (omitted when unset), as JSON.
pub fn process_state(pid: i32, metadata: Option<&str>, state: &State) -> Vec<u8> {
    let doc = ProcessState {
        oci_version: crate::features::OCI_VERSION_MAX,
        fds: [SECCOMP_FD_NAME],
        pid,
        metadata,
        state,
    };
    // Plain strings, numbers and maps of strings: serializing them cannot fail.
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// Connect to the agent's socket at `path` (`linux.seccomp.listenerPath`); a leading `@`
/// names an abstract socket. The connection is close-on-exec.
pub fn connect(path: &Path) -> Result<OwnedFd, SecurityError> {
    let fail = |source| SecurityError::AgentConnect {
        path: path.to_path_buf(),
        source,
    };
    let bytes = path.as_os_str().as_bytes();
    let stream = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = SocketAddr::from_abstract_name(name).map_err(fail)?;
            UnixStream::connect_addr(&addr)
        }
        None => UnixStream::connect(path),
    }
    .map_err(fail)?;
    Ok(stream.into())
}

/// In the container process, right after the filter is loaded: send `state` (from
/// `process_state`) with `listener` attached over `socket`, then close both.
pub fn hand_over(socket: OwnedFd, state: &[u8], listener: OwnedFd) -> Result<(), SecurityError> {
    crate::sys::fdpass::send_with_fd(socket.as_fd(), state, listener.as_fd()).map_err(|errno| {
        SecurityError::Apply {
            step: "send the seccomp listener to the agent at linux.seccomp.listenerPath",
            errno,
        }
    })?;
    drop(listener);
    drop(socket);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Status;
    use std::collections::HashMap;
    use std::io::Read;
    use std::os::unix::net::UnixListener;

    fn state(status: Status) -> State {
        State {
            oci_version: "1.0.2".into(),
            id: "c1".into(),
            status,
            pid: 4242,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2024-01-01T00:00:00Z".into(),
            owner: "root".into(),
            annotations: HashMap::from([("k".to_string(), "v".to_string())]),
        }
    }

    #[test]
    fn process_state_has_the_spec_shape() {
        let doc: serde_json::Value =
            serde_json::from_slice(&process_state(4343, Some("m=1"), &state(Status::Running)))
                .unwrap();
        assert_eq!(doc["ociVersion"], crate::features::OCI_VERSION_MAX);
        assert_eq!(doc["fds"], serde_json::json!(["seccompFd"]));
        assert_eq!(doc["pid"], 4343);
        assert_eq!(doc["metadata"], "m=1");
        assert_eq!(doc["state"]["id"], "c1");
        assert_eq!(doc["state"]["status"], "running");
        assert_eq!(doc["state"]["pid"], 4242);
        assert_eq!(doc["state"]["bundle"], "/b");
        assert_eq!(doc["state"]["annotations"]["k"], "v");
        // It parses as the spec's type.
        let parsed: oci_spec::runtime::ContainerProcessState = serde_json::from_value(doc).unwrap();
        assert_eq!(parsed.pid(), &4343);

        let doc: serde_json::Value =
            serde_json::from_slice(&process_state(1, None, &state(Status::Creating))).unwrap();
        assert!(doc.get("metadata").is_none(), "{doc}");
        assert_eq!(doc["state"]["status"], "creating");
    }

    #[test]
    fn hand_over_sends_the_state_and_the_fd_then_closes() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let (probe_r, probe_w) = nix::unistd::pipe().unwrap();
        let big = vec![b'x'; 300_000];
        let sender = std::thread::spawn(move || hand_over(theirs.into(), &big, probe_w));
        // The first read brings the fd; the rest of the bytes follow, then the end of the
        // stream (the connection was closed).
        let (fd, first) = crate::tty::recv_fd(ours.as_fd()).unwrap();
        let mut rest = Vec::new();
        (&ours).read_to_end(&mut rest).unwrap();
        sender.join().unwrap().unwrap();
        assert_eq!(first.len() + rest.len(), 300_000);
        // The received fd is the pipe's write end: what it writes comes out of ours.
        nix::unistd::write(&fd, b"ok").unwrap();
        let mut buf = [0u8; 2];
        nix::unistd::read(&probe_r, &mut buf).unwrap();
        assert_eq!(&buf, b"ok");
    }

    #[test]
    fn connect_names_the_path() {
        let dir = std::env::temp_dir().join(format!("casulo-agent-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("agent.sock");
        let err = connect(&path).unwrap_err().to_string();
        assert!(
            err.contains("linux.seccomp.listenerPath") && err.contains(path.to_str().unwrap()),
            "{err}"
        );
        let listener = UnixListener::bind(&path).unwrap();
        let conn = connect(&path).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        drop(conn);
        let mut buf = Vec::new();
        (&accepted).read_to_end(&mut buf).unwrap();
        assert!(buf.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();

        let name = format!("@casulo-agent-test-{}", std::process::id());
        let abstract_listener = UnixListener::bind_addr(
            &<SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(&name[1..])
                .unwrap(),
        )
        .unwrap();
        connect(Path::new(&name)).unwrap();
        abstract_listener.accept().unwrap();
    }
}
