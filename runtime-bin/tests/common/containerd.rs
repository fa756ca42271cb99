//! A private containerd for the suites that drive one (the containerd suite through `ctr`, the
//! CRI suite through the CRI's gRPC API): started with a configuration of the suite's own, its
//! log kept, and stopped with its shims.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::engine::{kill_processes_where, sha256_hex};

/// containerd 1.6 puts every shim's socket in this fixed directory, whatever its own state
/// directory is.
pub const SHIM_SOCKET_DIR: &str = "/run/containerd/s";

/// The socket of the shim of container (or pod sandbox) `id` in namespace `ns` of the daemon
/// listening on `address`, as containerd 1.6 names it.
pub fn shim_socket(address: &Path, ns: &str, id: &str) -> PathBuf {
    let key = format!("{}/{ns}/{id}", address.display());
    Path::new(SHIM_SOCKET_DIR).join(sha256_hex(key.as_bytes()))
}

/// A running containerd. Dropping it stops it (see [`Daemon::stop`]) and removes
/// `/run/containerd` if it made it and left it empty.
pub struct Daemon {
    child: Option<Child>,
    /// Where its config and log are.
    dir: PathBuf,
    /// The gRPC socket its config names.
    pub address: PathBuf,
    had_run_containerd: bool,
}

impl Daemon {
    /// Write `config` to `<dir>/config.toml` and start containerd with it, its output in
    /// `<dir>/containerd.log`; `address` is the gRPC socket the config names.
    pub fn spawn(dir: &Path, address: &Path, config: &str) -> Daemon {
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let had_run_containerd = Path::new("/run/containerd").exists();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn containerd");
        Daemon {
            child: Some(child),
            dir: dir.to_path_buf(),
            address: address.to_path_buf(),
            had_run_containerd,
        }
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Wait (at most 60 s) until `ready` holds; panics with the end of the log if the daemon
    /// exits first or is not ready in time.
    pub fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = self.exited() {
                panic!("containerd exited at start ({st}): {}", self.log_tail(30));
            }
            if self.address.exists() && ready() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "containerd: {what}: not within 60 s: {}",
                self.log_tail(30)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether it runs and its socket is there.
    pub fn is_up(&mut self) -> bool {
        self.child.is_some() && self.exited().is_none() && self.address.exists()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// The last `n` lines of its log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// SIGTERM, then SIGKILL after 30 s; then SIGKILL to its shims, which outlive it, each by
    /// its pid.
    pub fn stop(&mut self) {
        let Some(mut d) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(d.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while d.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = d.kill();
        let _ = d.wait();
        let address = self.address.to_str().unwrap().to_string();
        kill_processes_where(|args| args[0].contains("containerd-shim") && args.contains(&address));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        if !self.had_run_containerd {
            // Only if empty: containerd 1.6 made them for its shims' sockets.
            let _ = std::fs::remove_dir(SHIM_SOCKET_DIR);
            let _ = std::fs::remove_dir("/run/containerd");
        }
    }
}
