//! `start` must succeed when the program it releases exits at once and is reaped before
//! `start` looks at it again: under containerd's shim, a subreaper that reaps every exit as
//! soon as it happens, `ctr run` of a short command failed now and then with
//! "start: pidfd_open N: ESRCH" although the program had run.

use std::path::{Path, PathBuf};

use casulo::{Container, ContainerBuilder};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A bundle whose rootfs is Debian's busybox-static, running `/bin/true` on CPU `cpu`.
fn true_bundle(dir: &Path, cpu: usize) {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/true")).unwrap();
    let mut spec = casulo::default_spec_json(casulo::SpecOptions::default());
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(["/bin/true"]);
    spec["linux"]["resources"]["cpu"] = serde_json::json!({"cpus": cpu.to_string()});
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&spec).unwrap(),
    )
    .unwrap();
}

/// util-linux `chrt` on a thread of this process.
fn chrt(args: &[&str]) {
    let st = std::process::Command::new("chrt").args(args).status();
    assert!(st.is_ok_and(|s| s.success()), "chrt {args:?} failed");
}

#[test]
fn start_succeeds_when_the_program_exits_and_is_reaped_at_once() {
    let name = "start_succeeds_when_the_program_exits_and_is_reaped_at_once";
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP {name}: needs root");
        return;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("SKIP {name}: needs /bin/busybox (busybox-static)");
        return;
    }
    let tmp = TempDir(std::env::temp_dir().join(format!("casulo-lib-race-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&tmp.0);
    // Everything on one CPU (the container through its cpuset): the released init then runs,
    // and exits, before `start` goes on (see the SCHED_IDLE below).
    let cpu = nix::sched::sched_getaffinity(Pid::from_raw(0))
        .ok()
        .and_then(|s| (0..nix::sched::CpuSet::count()).find(|&c| s.is_set(c).unwrap_or(false)))
        .unwrap_or(0);
    let mut one = nix::sched::CpuSet::new();
    one.set(cpu).unwrap();
    nix::sched::sched_setaffinity(Pid::from_raw(0), &one).unwrap();
    let bundle = tmp.0.join("bundle");
    true_bundle(&bundle, cpu);
    let root = tmp.0.join("state");
    // Like the shim: the container's init is our child (casulo's stage forks it as our
    // child), and a thread reaps it the moment it exits.
    let mut failures = Vec::new();
    for i in 0..40 {
        let id = format!("race-{}-{i}", std::process::id());
        let c = ContainerBuilder::new(&id, &bundle)
            .root(&root)
            .create()
            .expect("create");
        let pid = c.state().unwrap().pid;
        let reaper = std::thread::spawn(move || loop {
            match waitpid(Pid::from_raw(pid), None) {
                Err(nix::Error::EINTR) => continue,
                Ok(WaitStatus::Exited(_, code)) => return Some(code),
                _ => return None,
            }
        });
        // `start` at SCHED_IDLE on the init's CPU: the init it releases (SCHED_OTHER)
        // preempts it, execs, exits and is reaped before `start` runs its next instruction.
        chrt(&["--idle", "-p", "0", &nix::unistd::gettid().to_string()]);
        let started = c.start();
        chrt(&["--other", "-p", "0", &nix::unistd::gettid().to_string()]);
        if let Err(e) = started {
            failures.push(format!("{id}: {e}"));
        }
        assert_eq!(
            reaper.join().unwrap(),
            Some(0),
            "{id}: the program did not run"
        );
        Container::load(&root, &id)
            .unwrap()
            .force_delete()
            .expect("delete");
    }
    assert!(
        failures.is_empty(),
        "start failed although the program ran: {failures:#?}"
    );
    assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0, "state left");
}
