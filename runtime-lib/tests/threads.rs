//! The library is linked into multi-threaded programs: creating containers while other threads
//! allocate must never deadlock the forked child (glibc's fork keeps malloc usable; the child
//! takes no other lock a thread could hold).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use casulo::{Container, ContainerBuilder, Status};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("casulo-lib-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A bundle whose rootfs is Debian's busybox-static, with a minimal config running `args`.
fn busybox_bundle(dir: &Path, args: &[&str]) -> bool {
    let busybox = Path::new("/bin/busybox");
    if !busybox.exists() {
        return false;
    }
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "dev", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(busybox, rootfs.join("bin/busybox")).unwrap();
    for applet in ["sh", "true", "echo"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let mut spec = casulo::default_spec_json(casulo::SpecOptions::default());
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(args);
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_vec_pretty(&spec).unwrap(),
    )
    .unwrap();
    true
}

#[test]
fn create_while_other_threads_allocate() {
    if !is_root() {
        eprintln!("SKIP create_while_other_threads_allocate: needs root");
        return;
    }
    let tmp = TempDir::new("threads");
    let bundle = tmp.0.join("bundle");
    if !busybox_bundle(&bundle, &["/bin/true"]) {
        eprintln!(
            "SKIP create_while_other_threads_allocate: /bin/busybox (busybox-static) is missing"
        );
        return;
    }
    let root = tmp.0.join("state");
    nix::sys::prctl::set_child_subreaper(true).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let v: Vec<u8> = vec![i as u8; 1 + (n as usize * 7919) % 65536];
                    n = n.wrapping_add(v.len() as u64);
                    let s = format!("{n}");
                    std::hint::black_box((v, s));
                }
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(120);
    for i in 0..20 {
        let id = format!("threads-{}-{i}", std::process::id());
        let c = ContainerBuilder::new(&id, &bundle)
            .root(&root)
            .create()
            .expect("create");
        c.start().expect("start");
        assert_eq!(c.wait().expect("wait"), 0);
        assert_eq!(c.status().unwrap(), Status::Stopped);
        Container::load(&root, &id)
            .unwrap()
            .delete()
            .expect("delete");
        assert!(Instant::now() < deadline, "creating containers got stuck");
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(
        std::fs::read_dir(&root).unwrap().count(),
        0,
        "state left behind"
    );
}
