//! The workloads: each is what an engine asks of a runtime, timed for every runtime in rounds
//! whose order rotates, so that noise and the kernel's warm paths spread evenly.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::measure::{probed, reap_orphans, timed, Sample};

/// A runtime binary under test, with a state root of its own.
pub struct Runtime {
    pub name: String,
    pub bin: PathBuf,
    pub root: PathBuf,
}

impl Runtime {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--root").arg(&self.root);
        c
    }

    fn args(&self, rest: &[&str]) -> Vec<OsString> {
        let mut v: Vec<OsString> = vec!["--root".into(), self.root.clone().into()];
        v.extend(rest.iter().map(OsString::from));
        v
    }
}

/// The bundles and files the workloads share.
pub struct Ctx {
    pub template: PathBuf,
    pub engine: PathBuf,
    pub sleeper: PathBuf,
    pub exec_process: PathBuf,
    pub iterations: usize,
    pub warmup: usize,
    pub parallel: usize,
    pub list_count: usize,
}

/// One workload's samples of one runtime.
pub struct Series {
    pub runtime: String,
    pub samples: Vec<Sample>,
}

/// `rounds` rounds; in each, `f(runtime, round)` once per runtime, the order rotated by one
/// every round, each after the same cgroup move ([`crate::level`]). The warm-up rounds are
/// dropped.
fn rounds(
    rts: &[Runtime],
    warmup: usize,
    iterations: usize,
    mut f: impl FnMut(&Runtime, usize) -> Result<Sample, String>,
) -> Result<Vec<Series>, String> {
    let mut out: Vec<Series> = rts
        .iter()
        .map(|r| Series {
            runtime: r.name.clone(),
            samples: Vec::new(),
        })
        .collect();
    let n = rts.len().max(1);
    for round in 0..warmup + iterations {
        for k in 0..n {
            let i = (round + k) % n;
            crate::level::level();
            let s = f(&rts[i], round)?;
            if round >= warmup {
                out[i].samples.push(s);
            }
        }
    }
    Ok(out)
}

fn time_only(t: Duration) -> Sample {
    Sample {
        time: t,
        rss_kib: None,
    }
}

fn bundle_str(p: &Path) -> &str {
    p.to_str().expect("bundle paths are UTF-8")
}

/// `run` of /bin/true on `bundle`, each through the probe (time and peak RSS).
pub fn run(rts: &[Runtime], ctx: &Ctx, bundle: &Path, tag: &str) -> Result<Vec<Series>, String> {
    rounds(rts, ctx.warmup, ctx.iterations, |rt, i| {
        let id = format!("b-{tag}-{}-{i}", rt.name);
        probed(
            &rt.bin,
            &rt.args(&["run", "--bundle", bundle_str(bundle), &id]),
        )
    })
}

/// `run` of the template, each after `gap` of idle: containers started apart, as an engine
/// starts them, rather than back to back. A kernel cost that a recent operation of any
/// runtime spares the next one (a cgroup move waits for an RCU grace period only when no
/// other move happened in the last one) shows here and hides in `run`.
pub fn paced(rts: &[Runtime], ctx: &Ctx, gap: Duration) -> Result<Vec<Series>, String> {
    rounds(rts, ctx.warmup, ctx.iterations, |rt, i| {
        std::thread::sleep(gap);
        let id = format!("b-paced-{}-{i}", rt.name);
        let b = bundle_str(&ctx.template);
        Ok(time_only(timed(
            rt.cmd().args(["run", "--bundle", b, &id]),
        )?))
    })
}

/// The floor: `unshare` of the same namespaces and `chroot ROOTFS /bin/true`.
pub fn floor(ctx: &Ctx, unshare: &Path) -> Result<Series, String> {
    let rootfs = ctx.template.join("rootfs");
    let rt = Runtime {
        name: "unshare+chroot".into(),
        bin: unshare.to_path_buf(),
        root: PathBuf::new(),
    };
    let mut s = rounds(
        std::slice::from_ref(&rt),
        ctx.warmup,
        ctx.iterations,
        |rt, _| {
            let mut args: Vec<OsString> = ["-m", "-u", "-i", "-p", "-n", "-f", "chroot"]
                .iter()
                .map(OsString::from)
                .collect();
            args.push(rootfs.clone().into());
            args.push("/bin/true".into());
            probed(&rt.bin, &args)
        },
    )?;
    Ok(s.remove(0))
}

/// `create`, `start`, `delete --force` as three processes, as containerd, podman and CRI-O
/// drive a runtime; the sum of the three.
pub fn lifecycle(rts: &[Runtime], ctx: &Ctx) -> Result<Vec<Series>, String> {
    let b = bundle_str(&ctx.template);
    rounds(rts, ctx.warmup, ctx.iterations, |rt, i| {
        let id = format!("b-lc-{}-{i}", rt.name);
        let a = timed(rt.cmd().args(["create", "--bundle", b, &id]))?;
        let s = timed(rt.cmd().args(["start", &id]))?;
        let d = timed(rt.cmd().args(["delete", "--force", &id]))?;
        Ok(time_only(a + s + d))
    })
}

/// A long-running container per runtime, for exec and state; deleted on drop.
pub struct Running<'a> {
    rts: &'a [Runtime],
}

impl Running<'_> {
    /// The container's id in `rt`: each runtime's own, since they share the cgroup trees.
    pub fn id(&self, rt: &Runtime) -> String {
        format!("b-sleeper-{}-{}", rt.name, std::process::id())
    }
}

impl<'a> Running<'a> {
    pub fn start(rts: &'a [Runtime], ctx: &Ctx) -> Result<Running<'a>, String> {
        let r = Running { rts };
        for rt in rts {
            timed(rt.cmd().args([
                "run",
                "--detach",
                "--bundle",
                bundle_str(&ctx.sleeper),
                &r.id(rt),
            ]))?;
        }
        Ok(r)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        for rt in self.rts {
            let _ = timed(rt.cmd().args(["delete", "--force", &self.id(rt)]));
        }
        reap_orphans();
    }
}

/// `exec` of /bin/true into the running container: in the foreground, or as engines call it,
/// `exec --process FILE --detach` (the process is then the benchmark's to reap).
pub fn exec(
    rts: &[Runtime],
    ctx: &Ctx,
    running: &Running,
    detach: bool,
) -> Result<Vec<Series>, String> {
    let process = bundle_str(&ctx.exec_process);
    // The process of `exec --detach` outlives the runtime: the benchmark is its subreaper and
    // reaps it, as an engine's shim does. Only here: elsewhere an orphan (the init of a
    // created container whose runtime has exited) goes to pid 1, which reaps it at once,
    // while a subreaper that reaps between commands only would leave zombies in the cgroups
    // that delete then waits for.
    nix::sys::prctl::set_child_subreaper(detach).map_err(|e| format!("subreaper: {e}"))?;
    let result = rounds(rts, ctx.warmup, ctx.iterations, |rt, _| {
        let t = if detach {
            timed(
                rt.cmd()
                    .args(["exec", "--process", process, "--detach", &running.id(rt)]),
            )?
        } else {
            timed(rt.cmd().args(["exec", &running.id(rt), "/bin/true"]))?
        };
        reap_orphans();
        Ok(time_only(t))
    });
    let _ = nix::sys::prctl::set_child_subreaper(false);
    result
}

/// `state` of the running container.
pub fn state(rts: &[Runtime], ctx: &Ctx, running: &Running) -> Result<Vec<Series>, String> {
    rounds(rts, ctx.warmup, ctx.iterations, |rt, _| {
        Ok(time_only(timed(rt.cmd().args(["state", &running.id(rt)]))?))
    })
}

/// `ctx.parallel` foreground `run`s at once: the wall time of the batch.
pub fn parallel(rts: &[Runtime], ctx: &Ctx) -> Result<Vec<Series>, String> {
    let b = bundle_str(&ctx.template);
    let iterations = (ctx.iterations / 4).max(5);
    rounds(rts, ctx.warmup.min(3), iterations, |rt, i| {
        let start = Instant::now();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..ctx.parallel)
                .map(|k| {
                    let id = format!("b-par-{}-{i}-{k}", rt.name);
                    s.spawn(move || timed(rt.cmd().args(["run", "--bundle", b, &id])))
                })
                .collect();
            handles.into_iter().try_for_each(|h| {
                h.join()
                    .map_err(|_| "thread panicked".to_string())?
                    .map(drop)
            })
        })?;
        Ok(time_only(start.elapsed()))
    })
}

/// `list` with `ctx.list_count` created containers in each runtime's root. The containers are
/// created (8 at once) and force-deleted around the timing, untimed.
pub fn list(rts: &[Runtime], ctx: &Ctx) -> Result<Vec<Series>, String> {
    let b = bundle_str(&ctx.sleeper);
    let each = |rt: &Runtime, verb: &[&str]| -> Result<(), String> {
        let ids: Vec<String> = (0..ctx.list_count)
            .map(|k| format!("b-list-{}-{k}", rt.name))
            .collect();
        let ids = &ids;
        std::thread::scope(|s| {
            let handles: Vec<_> = ids
                .chunks(ids.len().div_ceil(8).max(1))
                .map(|chunk| {
                    s.spawn(move || {
                        chunk.iter().try_for_each(|id| {
                            let mut c = rt.cmd();
                            c.args(verb);
                            if verb[0] == "create" {
                                c.args(["--bundle", b]);
                            }
                            timed(c.arg(id)).map(drop)
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().map_err(|_| "thread panicked".to_string())?)
        })
    };
    let mut made = Vec::new();
    let result = (|| {
        for rt in rts {
            made.push(rt);
            each(rt, &["create"])?;
        }
        let iterations = (ctx.iterations / 10).max(5);
        rounds(rts, 1, iterations, |rt, _| {
            Ok(time_only(timed(rt.cmd().arg("list"))?))
        })
    })();
    for rt in made {
        if let Err(e) = each(rt, &["delete", "--force"]) {
            eprintln!(
                "lifecycle-bench: cleanup of {}'s list containers: {e}",
                rt.name
            );
        }
    }
    result
}

/// The library in this long-lived process: `ctx.parallel` threads at once, each creating,
/// starting, waiting for and deleting a container of /bin/true; the wall time of the batch.
pub fn library(ctx: &Ctx, root: &Path) -> Result<Series, String> {
    let rt = Runtime {
        name: "casulo (library)".into(),
        bin: PathBuf::new(),
        root: root.to_path_buf(),
    };
    let iterations = (ctx.iterations / 4).max(5);
    let mut s = rounds(
        std::slice::from_ref(&rt),
        ctx.warmup.min(3),
        iterations,
        |rt, i| {
            let start = Instant::now();
            std::thread::scope(|s| {
                let handles: Vec<_> = (0..ctx.parallel)
                    .map(|k| {
                        let id = format!("b-lib-{i}-{k}");
                        s.spawn(move || one_library_container(&id, &ctx.template, &rt.root))
                    })
                    .collect();
                handles
                    .into_iter()
                    .try_for_each(|h| h.join().map_err(|_| "thread panicked".to_string())?)
            })?;
            Ok(time_only(start.elapsed()))
        },
    )?;
    Ok(s.remove(0))
}

fn one_library_container(id: &str, bundle: &Path, root: &Path) -> Result<(), String> {
    let c = casulo::ContainerBuilder::new(id, bundle)
        .root(root)
        .create()
        .map_err(|e| e.to_string())?;
    c.start().map_err(|e| e.to_string())?;
    let code = c.wait().map_err(|e| e.to_string())?;
    c.delete().map_err(|e| e.to_string())?;
    if code != 0 {
        return Err(format!("{id}: /bin/true exited {code}"));
    }
    Ok(())
}
