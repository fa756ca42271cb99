//! Terminal: pty creation, the console bind mount, fd passing, the console listener and the
//! proxy, on the host's devpts or on a private one.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use casulo::__private::tty::{
    copy_window_size, mount_console, open_pty, proxy_fds, recv_fd, send_fd, set_controlling,
    setup_console_at, ConsoleListener, TtyError,
};
use nix::fcntl::{open, OFlag};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::stat::Mode;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

/// A private scratch directory removed on drop, even when the test fails.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "casulo-test-tty-{name}-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir(&dir).expect("create scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn open_dir(path: &Path) -> OwnedFd {
    open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .unwrap()
}

/// The host's /dev, or a visible skip when it has no ptmx.
fn host_dev() -> Option<OwnedFd> {
    if !Path::new("/dev/ptmx").exists() {
        eprintln!("SKIP: /dev/ptmx is missing on this machine");
        return None;
    }
    Some(open_dir(Path::new("/dev")))
}

fn make_raw(fd: &OwnedFd) {
    let mut t = tcgetattr(fd).unwrap();
    cfmakeraw(&mut t);
    tcsetattr(fd, SetArg::TCSANOW, &t).unwrap();
}

fn read_exact_fd(fd: &OwnedFd, n: usize) -> Vec<u8> {
    let mut f = fs::File::from(fd.try_clone().unwrap());
    let mut buf = vec![0u8; n];
    f.read_exact(&mut buf).unwrap();
    buf
}

fn write_fd(fd: &OwnedFd, data: &[u8]) {
    let mut f = fs::File::from(fd.try_clone().unwrap());
    f.write_all(data).unwrap();
}

#[test]
fn tty_send_and_receive_fd_over_socketpair() {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    let (pipe_r, pipe_w) = nix::unistd::pipe().unwrap();
    send_fd(a.as_fd(), b"/dev/pts/7", pipe_w.as_fd()).unwrap();
    drop(pipe_w); // only the received copy keeps the pipe's write end open now
    let (received, name) = recv_fd(b.as_fd()).unwrap();
    assert_eq!(name, b"/dev/pts/7");
    assert_ne!(received.as_raw_fd(), pipe_r.as_raw_fd());
    let flags = nix::fcntl::fcntl(&received, nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert_ne!(
        flags & libc::FD_CLOEXEC,
        0,
        "received fd must be close-on-exec"
    );
    write_fd(&received, b"through the passed fd");
    drop(received);
    let mut got = String::new();
    fs::File::from(pipe_r).read_to_string(&mut got).unwrap();
    assert_eq!(got, "through the passed fd");
}

#[test]
fn tty_receive_without_fd_is_an_error() {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    nix::unistd::write(&a, b"no fd here").unwrap();
    let err = recv_fd(b.as_fd()).unwrap_err();
    assert!(matches!(err, TtyError::BadMessage(_)), "{err:?}");
    drop(a);
    let err = recv_fd(b.as_fd()).unwrap_err();
    assert!(err.to_string().contains("closed the connection"), "{err}");
}

#[test]
fn tty_console_listener_round_trip() {
    let scratch = Scratch::new("listener");
    let listener = ConsoleListener::new_in(&scratch.0).unwrap();
    let path = listener.path().to_path_buf();
    let dir = path.parent().unwrap().to_path_buf();
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(fs::symlink_metadata(&path).unwrap().file_type().is_socket());

    let (pipe_r, pipe_w) = nix::unistd::pipe().unwrap();
    let sender = std::thread::spawn(move || {
        let conn = UnixStream::connect(&path).unwrap();
        send_fd(conn.as_fd(), b"/dev/pts/3", pipe_w.as_fd()).unwrap();
    });
    let (fd, name) = listener.recv_master_named(Duration::from_secs(10)).unwrap();
    sender.join().unwrap();
    assert_eq!(name, "/dev/pts/3");
    write_fd(&fd, b"ok");
    drop(fd);
    let mut got = String::new();
    fs::File::from(pipe_r).read_to_string(&mut got).unwrap();
    assert_eq!(got, "ok");

    drop(listener);
    assert!(!dir.exists(), "listener directory left behind");
}

#[test]
fn tty_console_listener_times_out() {
    let listener = ConsoleListener::new().unwrap();
    let start = std::time::Instant::now();
    let err = listener
        .recv_master(Duration::from_millis(200))
        .unwrap_err();
    assert!(matches!(err, TtyError::Timeout { .. }), "{err:?}");
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[test]
fn tty_open_pty_gives_a_connected_pair() {
    let Some(dev) = host_dev() else { return };
    let pty = open_pty(dev.as_fd()).unwrap();
    assert_eq!(pty.name, format!("/dev/pts/{}", pty.index));
    // The slave is the pts device numbered `index`.
    let st = nix::sys::stat::fstat(&pty.slave).unwrap();
    let (major, minor) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
    assert!((136..=143).contains(&major), "slave major {major}");
    assert_eq!((major - 136) * 256 + minor, pty.index);
    assert!(nix::unistd::isatty(&pty.slave).unwrap());

    make_raw(&pty.slave);
    write_fd(&pty.master, b"to-slave");
    assert_eq!(read_exact_fd(&pty.slave, 8), b"to-slave");
    write_fd(&pty.slave, b"to-master");
    assert_eq!(read_exact_fd(&pty.master, 9), b"to-master");
}

#[test]
fn tty_console_symlink_is_refused() {
    let Some(dev) = host_dev() else { return };
    let pty = open_pty(dev.as_fd()).unwrap();
    let scratch = Scratch::new("symlink");
    let victim = scratch.0.join("victim");
    fs::write(&victim, "untouched").unwrap();
    symlink(&victim, scratch.0.join("console")).unwrap();
    let dir = open_dir(&scratch.0);
    let err = mount_console(dir.as_fd(), pty.slave.as_fd()).unwrap_err();
    assert!(matches!(err, TtyError::ConsoleIsSymlink { .. }), "{err:?}");
    assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");

    // A dangling symlink is refused too, and nothing is created at its target.
    fs::remove_file(scratch.0.join("console")).unwrap();
    let dangling = scratch.0.join("created-through-link");
    symlink(&dangling, scratch.0.join("console")).unwrap();
    let err = mount_console(dir.as_fd(), pty.slave.as_fd()).unwrap_err();
    assert!(matches!(err, TtyError::ConsoleIsSymlink { .. }), "{err:?}");
    assert!(!dangling.exists());
}

#[test]
fn tty_console_directory_is_refused() {
    let Some(dev) = host_dev() else { return };
    let pty = open_pty(dev.as_fd()).unwrap();
    let scratch = Scratch::new("dir");
    fs::create_dir(scratch.0.join("console")).unwrap();
    let dir = open_dir(&scratch.0);
    let err = mount_console(dir.as_fd(), pty.slave.as_fd()).unwrap_err();
    assert!(matches!(err, TtyError::ConsoleNotFile { .. }), "{err:?}");
}

/// The whole in-container sequence on a private devpts in a private mount namespace: it runs on
/// its own thread, which alone enters the new namespace and takes it away when it ends.
#[test]
fn tty_setup_console_on_private_devpts() {
    let scratch = Scratch::new("setup");
    let root = scratch.0.clone();
    let result = std::thread::spawn(move || -> Result<(), String> {
        use nix::mount::{mount, MsFlags};
        use nix::sched::{unshare, CloneFlags};
        if let Err(e) = unshare(CloneFlags::CLONE_NEWNS) {
            return Err(format!("SKIP: cannot create a mount namespace: {e}"));
        }
        // Nothing done in this namespace may propagate back to the host.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| format!("make mounts private: {e}"))?;
        let dev = root.join("dev");
        fs::create_dir(&dev).unwrap();
        mount(
            Some("tmpfs"),
            &dev,
            Some("tmpfs"),
            MsFlags::MS_NOSUID,
            Some("mode=755"),
        )
        .map_err(|e| format!("mount tmpfs: {e}"))?;
        fs::create_dir(dev.join("pts")).unwrap();
        mount(
            Some("devpts"),
            &dev.join("pts"),
            Some("devpts"),
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620"),
        )
        .map_err(|e| format!("mount devpts: {e}"))?;
        symlink("pts/ptmx", dev.join("ptmx")).unwrap();

        let dev_fd = open_dir(&dev);
        let (ours, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let slave = setup_console_at(dev_fd.as_fd(), ours.as_fd()).map_err(|e| e.to_string())?;
        let (master, name) = recv_fd(theirs.as_fd()).map_err(|e| e.to_string())?;
        assert_eq!(name, casulo::__private::tty::MASTER_MESSAGE);

        // /dev/console is now the pty slave.
        let console_meta = fs::metadata(dev.join("console")).unwrap();
        assert!(console_meta.file_type().is_char_device());
        let slave_st = nix::sys::stat::fstat(&slave).unwrap();
        assert_eq!(console_meta.rdev(), slave_st.st_rdev);
        // First pty of a new devpts instance.
        assert_eq!(
            fs::metadata(dev.join("pts/0")).unwrap().rdev(),
            slave_st.st_rdev
        );

        // And the received master drives it.
        make_raw(&slave);
        write_fd(&master, b"ping");
        assert_eq!(read_exact_fd(&slave, 4), b"ping");
        let console = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open(dev.join("console"))
            .unwrap();
        (&console).write_all(b"via-console").unwrap();
        assert_eq!(read_exact_fd(&master, 11), b"via-console");
        Ok(())
    })
    .join()
    .unwrap();
    match result {
        Ok(()) => {}
        Err(msg) if msg.starts_with("SKIP") => eprintln!("{msg}"),
        Err(msg) => panic!("{msg}"),
    }
}

use std::os::unix::fs::OpenOptionsExt;

#[test]
// `set_controlling` must run in the child between fork and exec, which only the unsafe
// `CommandExt::pre_exec` offers: the one exception to the workspace's `unsafe_code = "deny"` here.
#[allow(unsafe_code)]
fn tty_set_controlling_makes_the_pty_stdio_and_ctty() {
    let Some(dev) = host_dev() else { return };
    let pty = open_pty(dev.as_fd()).unwrap();
    let scratch = Scratch::new("ctty");
    let out = scratch.0.join("stat");
    let slave_rdev = nix::sys::stat::fstat(&pty.slave).unwrap().st_rdev;

    // The child becomes a session leader and takes the slave, then reports its tty and stdio.
    let mut slave = Some(pty.slave.try_clone().unwrap());
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(
            "t=$(cut -d' ' -f7 /proc/$$/stat); a=$(readlink /proc/$$/fd/0); \
             b=$(readlink /proc/$$/fd/1); c=$(readlink /proc/$$/fd/2); \
             printf '%s\\n' \"$t\" \"$a\" \"$b\" \"$c\" > \"$OUT\"",
        )
        .env_clear()
        .env("OUT", &out);
    // SAFETY: the closure only makes syscalls (setsid, ioctl, dup2, fcntl, close) on an fd
    // prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid()?;
            let fd = slave.take().expect("pre_exec runs once");
            set_controlling(fd).map_err(|_| std::io::Error::from_raw_os_error(libc::EIO))?;
            Ok(())
        });
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "{status:?}");
    let report = fs::read_to_string(&out).unwrap();
    let mut lines = report.lines();
    let tty_nr: u64 = lines.next().unwrap().parse().unwrap();
    // tty_nr encodes major in bits 8-15 and minor in bits 0-7 and 20-31.
    let (major, minor) = (
        libc::major(slave_rdev) as u64,
        libc::minor(slave_rdev) as u64,
    );
    let expected = (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12);
    assert_eq!(tty_nr, expected, "controlling tty");
    let links: Vec<&str> = lines.collect();
    assert_eq!(links, vec![pty.name.as_str(); 3], "stdio is the pty");
}

#[test]
fn tty_proxy_relays_both_ways_until_hangup() {
    let Some(dev) = host_dev() else { return };
    let pty = open_pty(dev.as_fd()).unwrap();
    make_raw(&pty.slave);
    let (in_r, in_w) = nix::unistd::pipe().unwrap();
    let (out_r, out_w) = nix::unistd::pipe().unwrap();
    write_fd(&in_w, b"keys");
    drop(in_w); // input ends: the proxy keeps relaying output until the hangup

    let master = pty.master;
    let proxy =
        std::thread::spawn(move || proxy_fds(master, Some(in_r.as_fd()), out_w.as_fd(), None));
    assert_eq!(read_exact_fd(&pty.slave, 4), b"keys");
    write_fd(&pty.slave, b"screen output");
    drop(pty.slave);
    proxy.join().unwrap().unwrap();
    let mut got = Vec::new();
    fs::File::from(out_r).read_to_end(&mut got).unwrap();
    assert_eq!(got, b"screen output");
}

#[test]
fn tty_window_size_is_copied() {
    let Some(dev) = host_dev() else { return };
    let from = open_pty(dev.as_fd()).unwrap();
    let to = open_pty(dev.as_fd()).unwrap();
    // stty sets and reads the size of the terminal on its stdin (TIOCSWINSZ, TIOCGWINSZ).
    let status = Command::new("stty")
        .args(["rows", "42", "cols", "133"])
        .stdin(from.slave.try_clone().unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "stty rows 42 cols 133: {status:?}");
    copy_window_size(from.slave.as_fd(), to.master.as_fd()).unwrap();
    let out = Command::new("stty")
        .arg("size")
        .stdin(to.slave.try_clone().unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "stty size: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42 133");
}
