//! The library is linked into multi-threaded programs: creating containers while other threads
//! allocate must never deadlock the forked child. The child takes no lock a thread could hold
//! and allocates nothing: this program's allocator counts what forked children do.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use casulo::__private::ChildAllocCounter;
use casulo::{Container, ContainerBuilder, Status};

#[global_allocator]
static ALLOC: ChildAllocCounter = ChildAllocCounter;

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

/// What a daemon does: a tokio runtime whose 8 worker threads allocate and log (under a lock)
/// all the time, and 500 containers with hooks at every point created, started, waited for
/// and deleted from its blocking pool, 16 at once. A forked child that waited on a lock one of
/// those threads held at the fork would hang here; a watchdog fails the test instead.
#[test]
fn a_tokio_program_runs_500_containers_with_hooks() {
    if !is_root() {
        eprintln!("SKIP a_tokio_program_runs_500_containers_with_hooks: needs root");
        return;
    }
    let tmp = TempDir::new("tokio");
    let bundle = tmp.0.join("bundle");
    if !busybox_bundle(&bundle, &["/bin/true"]) {
        eprintln!("SKIP a_tokio_program_runs_500_containers_with_hooks: no /bin/busybox");
        return;
    }
    // Hooks at every point: the init runs createContainer (host paths, before pivot_root) and
    // startContainer (inside the container) from its fork of this program.
    let config = bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    let hook = serde_json::json!([{"path": "/bin/true", "timeout": 10}]);
    spec["hooks"] = serde_json::json!({
        "prestart": hook, "createRuntime": hook, "createContainer": hook,
        "startContainer": hook, "poststart": hook, "poststop": hook
    });
    std::fs::write(&config, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    let root = tmp.0.join("state");

    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(600);
            while !done.load(Ordering::Relaxed) {
                if Instant::now() > deadline {
                    eprintln!("a_tokio_program_runs_500_containers_with_hooks: stuck for 10 min");
                    std::process::abort();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    ChildAllocCounter::arm();
    let allocs_before = ChildAllocCounter::count();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_time()
        .build()
        .unwrap();
    let log = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let failures = rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let noise: Vec<_> = (0..8u64)
            .map(|i| {
                let (stop, log) = (stop.clone(), log.clone());
                tokio::spawn(async move {
                    let mut n = i;
                    while !stop.load(Ordering::Relaxed) {
                        let v = vec![n as u8; 1 + (n as usize * 7919) % 65536];
                        n = n.wrapping_add(v.len() as u64);
                        {
                            let mut l = log.lock().unwrap();
                            l.extend_from_slice(format!("worker {i}: {n}\n").as_bytes());
                            if l.len() > 1 << 20 {
                                l.clear();
                            }
                        }
                        tokio::time::sleep(Duration::from_micros(200)).await;
                    }
                })
            })
            .collect();
        let slots = Arc::new(tokio::sync::Semaphore::new(16));
        let mut runs = Vec::new();
        for i in 0..500 {
            let permit = slots.clone().acquire_owned().await.unwrap();
            let (bundle, root) = (bundle.clone(), root.clone());
            runs.push(tokio::task::spawn_blocking(move || {
                let id = format!("tokio-{}-{i}", std::process::id());
                let result = (|| -> casulo::Result<i32> {
                    let c = ContainerBuilder::new(&id, &bundle).root(&root).create()?;
                    c.start()?;
                    let code = c.wait()?;
                    Container::load(&root, &id)?.delete()?;
                    Ok(code)
                })();
                drop(permit);
                result.map_err(|e| e.to_string())
            }));
        }
        let mut failures = Vec::new();
        for r in runs {
            match r.await.unwrap() {
                Ok(0) => {}
                Ok(code) => failures.push(format!("exit status {code}")),
                Err(e) => failures.push(e),
            }
        }
        stop.store(true, Ordering::Relaxed);
        for t in noise {
            t.await.unwrap();
        }
        failures
    });
    done.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(
        ChildAllocCounter::count() - allocs_before,
        0,
        "forked children allocated"
    );
    assert_eq!(
        std::fs::read_dir(&root).unwrap().count(),
        0,
        "state left behind"
    );
}
