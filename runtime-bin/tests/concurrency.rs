//! Many commands at once, and commands racing the container's own life: parallel lifecycles
//! on one `--root` watched by `state` and `list`, two `create`s of one id, `delete --force`
//! racing `start`, `kill` racing the init's exit (and a reused pid), and `delete --force` of
//! containers that resist (paused, ignoring SIGTERM, a hook that hangs) in bounded time.
//!
//! Every command runs under a time limit ([`output_within`]), so a hang fails the test
//! instead of hanging the suite.
mod common;
use common::engine::{alive, cmdline, describe, say};
use common::*;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The errors a command may give when the container it names has just died or been
/// deleted by a concurrent command: the runtime-spec's "not running" and "does not exist"
/// kinds, in runc's words, which casulo keeps (clients match them).
fn gone_or_stopped(stderr: &str) -> bool {
    ["not running", "does not exist", "is stopped", "has stopped"]
        .iter()
        .any(|m| stderr.contains(m))
}

/// The time limit of each command of the lifecycle loops and their readers. Past it the
/// command counts as hung. It is generous: with both cores saturated by other work, 16
/// concurrent `create`s and `exec`s were seen to take over 20 s, each waiting in the kernel for
/// an expedited RCU grace period (`namespace_unlock`, when the detached mount of the runtime's
/// binary is released), queued behind the others'.
const LOOP_LIMIT: Duration = Duration::from_secs(45);

/// `RUNTIME --root ROOT args...` within `limit`.
fn rt_at(root: &Path, args: &[&str], limit: Duration) -> Run {
    let mut c = Command::new(runtime());
    c.arg("--root").arg(root).args(args);
    output_within(c, limit)
}

/// What `state` said: a status, or that the container does not exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Absent,
    Creating,
    Created,
    Running,
    Stopped,
}

impl Seen {
    fn parse(status: &str) -> Option<Seen> {
        Some(match status {
            "creating" => Seen::Creating,
            "created" => Seen::Created,
            "running" => Seen::Running,
            "stopped" => Seen::Stopped,
            _ => return None,
        })
    }
}

/// `state ID` as a [`Seen`], or what went wrong.
fn state_at(root: &Path, id: &str) -> Result<Seen, String> {
    let r = rt_at(root, &["state", id], LOOP_LIMIT);
    if !r.ok() {
        return if r.status == Some(1) && r.stderr.contains("does not exist") {
            Ok(Seen::Absent)
        } else {
            Err(format!("state {id}: {}", describe(&r)))
        };
    }
    let v: Value = serde_json::from_str(&r.stdout)
        .map_err(|e| format!("state {id}: not JSON ({e}): {:?}", r.stdout))?;
    if v["id"] != id {
        return Err(format!("state {id}: another id: {v}"));
    }
    let status = v["status"].as_str().unwrap_or("");
    let seen =
        Seen::parse(status).ok_or_else(|| format!("state {id}: unknown status {status:?}"))?;
    check_pid(&v, seen).map_err(|e| format!("state {id}: {e}"))?;
    Ok(seen)
}

/// A created or running container has its init's pid; any has a pid that is not negative.
fn check_pid(v: &Value, seen: Seen) -> Result<(), String> {
    let pid = v["pid"].as_i64().ok_or_else(|| format!("no pid: {v}"))?;
    if pid < 0 || (matches!(seen, Seen::Created | Seen::Running) && pid == 0) {
        return Err(format!("pid {pid} for a {seen:?} container: {v}"));
    }
    Ok(())
}

/// Where a lifecycle loop is with its current container, in order. A command that is in
/// flight is its own phase, because a concurrent reader may see the container before or
/// after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Creating,
    Created,
    Starting,
    Running,
    Killing,
    Stopped,
    Deleting,
    Gone,
}

const PHASES: [Phase; 8] = [
    Phase::Creating,
    Phase::Created,
    Phase::Starting,
    Phase::Running,
    Phase::Killing,
    Phase::Stopped,
    Phase::Deleting,
    Phase::Gone,
];

impl Phase {
    /// What `state` may say of the container in this phase.
    fn allows(self, s: Seen) -> bool {
        use Seen::*;
        match self {
            Phase::Creating => matches!(s, Absent | Creating | Created),
            Phase::Created => s == Created,
            Phase::Starting => matches!(s, Created | Running),
            Phase::Running => s == Running,
            Phase::Killing => matches!(s, Running | Stopped),
            Phase::Stopped => s == Stopped,
            Phase::Deleting => matches!(s, Stopped | Absent),
            Phase::Gone => s == Absent,
        }
    }
}

/// One loop's current container and phase, as readers see it.
#[derive(Clone, Debug)]
struct View {
    id: String,
    phase: Phase,
}

/// Whether a reader that saw `before` when it began and `after` when it ended may have seen
/// `s` for `before`'s container: any phase in between allows it.
fn consistent(before: &View, after: &View, s: Seen) -> bool {
    let last = if after.id == before.id {
        after.phase
    } else {
        Phase::Gone
    };
    PHASES
        .iter()
        .filter(|p| **p >= before.phase && **p <= last)
        .any(|p| p.allows(s))
}

/// The shared state of the lifecycle loops and their readers.
struct Watch {
    views: Vec<Mutex<Option<View>>>,
    /// Every id a loop has used, for the messages.
    ever: Mutex<HashSet<String>>,
    stop: AtomicBool,
    failed: AtomicBool,
}

impl Watch {
    fn set(&self, i: usize, id: &str, phase: Phase) {
        self.ever.lock().unwrap().insert(id.to_string());
        *self.views[i].lock().unwrap() = Some(View {
            id: id.to_string(),
            phase,
        });
    }

    fn snapshot(&self) -> Vec<Option<View>> {
        self.views
            .iter()
            .map(|v| v.lock().unwrap().clone())
            .collect()
    }

    /// Record a failure, so that the other loops stop at their next round.
    fn fail(&self, msg: String) -> String {
        self.failed.store(true, Ordering::SeqCst);
        msg
    }
}

/// The parallel lifecycle loops of [`sixteen_loops_on_one_root`] and their rounds
/// (`CASULO_TEST_CONC_ROUNDS` to run more).
const LOOPS: usize = 16;

fn rounds() -> usize {
    std::env::var("CASULO_TEST_CONC_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// One lifecycle loop: `rounds` containers, each created, started, exec'd into, killed and
/// deleted, with `state` checked after each step. The bundles are returned, so that their
/// final cleanup and leftover check run once every loop is done.
fn lifecycle_loop(
    w: &Watch,
    i: usize,
    root: &Path,
    rounds: usize,
) -> (Vec<Bundle>, Result<(), String>) {
    let mut bundles = Vec::new();
    for round in 0..rounds {
        if w.failed.load(Ordering::SeqCst) {
            break;
        }
        let mut b = Bundle::new(&format!("conc{i}r{round}"), &["sleep", "100"]);
        b.root = root.to_path_buf();
        let id = b.id.clone();
        bundles.push(b);
        let b = bundles.last().unwrap();
        if let Err(e) = one_round(w, i, b) {
            return (
                bundles,
                Err(w.fail(format!("loop {i}, container {id}: {e}"))),
            );
        }
    }
    (bundles, Ok(()))
}

fn one_round(w: &Watch, i: usize, b: &Bundle) -> Result<(), String> {
    let id = b.id.as_str();
    let step = |phase: Phase, args: &[&str]| {
        w.set(i, id, phase);
        let r = output_within(b.cmd(args), LOOP_LIMIT);
        if r.ok() {
            Ok(())
        } else {
            Err(format!("{}: {}", args[0], describe(&r)))
        }
    };
    let expect = |want: Seen| match state_at(&b.root, id)? {
        s if s == want => Ok(()),
        s => Err(format!("state says {s:?}, expected {want:?}")),
    };
    let dir = b.dir.to_str().unwrap();
    step(Phase::Creating, &["create", "--bundle", dir, id])?;
    w.set(i, id, Phase::Created);
    expect(Seen::Created)?;
    step(Phase::Starting, &["start", id])?;
    w.set(i, id, Phase::Running);
    expect(Seen::Running)?;
    let r = output_within(b.cmd(&["exec", id, "true"]), LOOP_LIMIT);
    if !r.ok() {
        return Err(format!("exec: {}", describe(&r)));
    }
    expect(Seen::Running)?;
    step(Phase::Killing, &["kill", id, "KILL"])?;
    let deadline = Instant::now() + LOOP_LIMIT;
    loop {
        match state_at(&b.root, id)? {
            Seen::Stopped => break,
            Seen::Running if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5))
            }
            s => return Err(format!("after kill KILL, state says {s:?}")),
        }
    }
    w.set(i, id, Phase::Stopped);
    expect(Seen::Stopped)?;
    step(Phase::Deleting, &["delete", id])?;
    w.set(i, id, Phase::Gone);
    expect(Seen::Absent)
}

/// A `state` reader: a random loop's container, checked against what the loop knew before and
/// after the command.
fn state_reader(w: &Watch, root: &Path, seed: usize) -> Result<usize, String> {
    let mut n = 0;
    let mut k = seed;
    while !w.stop.load(Ordering::SeqCst) {
        k = (k * 7 + 3) % LOOPS;
        let Some(before) = w.snapshot()[k].clone() else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        let seen = state_at(root, &before.id).map_err(|e| w.fail(e))?;
        let after = w.snapshot()[k].clone().unwrap();
        if !consistent(&before, &after, seen) {
            return Err(w.fail(format!(
                "state {} said {seen:?} while its loop went from {:?} to {after:?}",
                before.id, before.phase
            )));
        }
        n += 1;
    }
    Ok(n)
}

/// A `list` reader: the output is JSON, names only containers of the loops, with a status
/// their loops allow, and never misses a container that existed throughout the command.
fn list_reader(w: &Watch, root: &Path) -> Result<usize, String> {
    let mut n = 0;
    while !w.stop.load(Ordering::SeqCst) {
        let before = w.snapshot();
        let r = rt_at(root, &["list", "--format", "json"], LOOP_LIMIT);
        let after = w.snapshot();
        check_list(&r, &before, &after, &w.ever).map_err(|e| w.fail(format!("list: {e}")))?;
        n += 1;
    }
    Ok(n)
}

fn check_list(
    r: &Run,
    before: &[Option<View>],
    after: &[Option<View>],
    ever: &Mutex<HashSet<String>>,
) -> Result<(), String> {
    if !r.ok() {
        return Err(describe(r));
    }
    let v: Value =
        serde_json::from_str(&r.stdout).map_err(|e| format!("not JSON ({e}): {:?}", r.stdout))?;
    // runc prints `null` for no containers.
    let rows = match &v {
        Value::Null => Vec::new(),
        Value::Array(a) => a.clone(),
        _ => return Err(format!("not an array: {v}")),
    };
    let mut listed = HashSet::new();
    for row in &rows {
        let id = row["id"].as_str().ok_or_else(|| format!("no id: {row}"))?;
        let status = row["status"].as_str().unwrap_or("");
        let seen = Seen::parse(status).ok_or_else(|| format!("unknown status in {row}"))?;
        check_pid(row, seen)?;
        if !listed.insert(id.to_string()) {
            return Err(format!("{id} listed twice: {v}"));
        }
        let ok = before.iter().zip(after).any(|(b, a)| match (b, a) {
            (Some(b), Some(a)) if b.id == id => consistent(b, a, seen),
            // Its loop began it during the command.
            (_, Some(a)) if a.id == id => PHASES
                .iter()
                .filter(|p| **p <= a.phase)
                .any(|p| p.allows(seen)),
            _ => false,
        });
        if !ok {
            let known = ever.lock().unwrap().contains(id);
            return Err(format!(
                "{id} listed as {status} (a container of the loops: {known}), which its loop \
                 does not allow; before {before:?}, after {after:?}"
            ));
        }
    }
    // A container that existed for the whole command is listed.
    for (b, a) in before.iter().zip(after) {
        if let (Some(b), Some(a)) = (b, a) {
            let kept = b.id == a.id && b.phase >= Phase::Created && a.phase <= Phase::Stopped;
            if kept && !listed.contains(&b.id) {
                return Err(format!(
                    "{} missing while its loop went from {:?} to {:?}: {v}",
                    b.id, b.phase, a.phase
                ));
            }
        }
    }
    Ok(())
}

/// Sets its flag when dropped, unwinding included.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// The directory that holds the shared `--root` of the loops (itself a bundle that is never
/// created: its cleanup removes the directory and checks its own id left nothing).
fn shared_root(name: &str) -> (Bundle, PathBuf) {
    let holder = Bundle::new(name, &["true"]);
    let root = holder.dir.join("shared-root");
    std::fs::create_dir_all(&root).unwrap();
    (holder, root)
}

#[test]
fn sixteen_loops_on_one_root() {
    if !can_run("sixteen_loops_on_one_root") {
        return;
    }
    let started = Instant::now();
    let (_holder, root) = shared_root("conc-root");
    let rounds = rounds();
    let w = Watch {
        views: (0..LOOPS).map(|_| Mutex::new(None)).collect(),
        ever: Mutex::new(HashSet::new()),
        stop: AtomicBool::new(false),
        failed: AtomicBool::new(false),
    };
    let (bundles, errors, reads) = std::thread::scope(|s| {
        let loops: Vec<_> = (0..LOOPS)
            .map(|i| {
                let (w, root) = (&w, &root);
                s.spawn(move || lifecycle_loop(w, i, root, rounds))
            })
            .collect();
        let states: Vec<_> = (0..2)
            .map(|k| {
                let (w, root) = (&w, &root);
                s.spawn(move || state_reader(w, root, k))
            })
            .collect();
        let lists: Vec<_> = (0..2)
            .map(|_| {
                let (w, root) = (&w, &root);
                s.spawn(move || list_reader(w, root))
            })
            .collect();
        // The readers stop when the loops are done, and also when a loop panics.
        let _stop = StopOnDrop(&w.stop);
        let mut bundles = Vec::new();
        let mut errors = Vec::new();
        for l in loops {
            let (b, r) = l.join().expect("a loop panicked");
            bundles.extend(b);
            errors.extend(r.err());
        }
        w.stop.store(true, Ordering::SeqCst);
        let mut reads = Vec::new();
        for t in states.into_iter().chain(lists) {
            match t.join().expect("a reader panicked") {
                Ok(n) => reads.push(n),
                Err(e) => errors.push(e),
            }
        }
        (bundles, errors, reads)
    });
    let containers = bundles.len();
    // Every bundle deletes its container (a no-op when its loop did) and checks that nothing
    // of it is left: state dir, mounts, cgroups in every hierarchy, processes.
    drop(bundles);
    let left: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert!(left.is_empty(), "left in the shared root: {left:?}");
    assert_eq!(containers, LOOPS * rounds);
    say(&format!(
        "sixteen_loops_on_one_root: {containers} containers in {LOOPS} loops, \
         {} state and {} list reads, {:.1} s",
        reads[0] + reads[1],
        reads[2] + reads[3],
        started.elapsed().as_secs_f64()
    ));
}

/// The cgroup directories of process `pid`, from /proc/PID/cgroup: every v1 hierarchy under
/// its mount point and the unified one under /sys/fs/cgroup/unified (or /sys/fs/cgroup on a
/// pure v2 host).
fn cgroup_dirs(pid: i32) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let unified = if Path::new("/sys/fs/cgroup/unified").is_dir() {
        PathBuf::from("/sys/fs/cgroup/unified")
    } else {
        PathBuf::from("/sys/fs/cgroup")
    };
    let mut dirs = Vec::new();
    for l in text.lines() {
        let mut f = l.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        let base = match ctrls {
            "" => unified.clone(),
            c => {
                let first = c.split(',').next().unwrap_or(c);
                let name = first.strip_prefix("name=").unwrap_or(first);
                let p = Path::new("/sys/fs/cgroup").join(name);
                if !p.is_dir() {
                    continue;
                }
                p
            }
        };
        dirs.push(base.join(path.trim_start_matches('/')));
    }
    dirs
}

#[test]
fn two_creates_of_one_id() {
    if !can_run("two_creates_of_one_id") {
        return;
    }
    let mut winners = [0; 2];
    for trial in 0..20 {
        let b = Bundle::new("conc-dup", &["sleep", "100"]);
        let barrier = Barrier::new(2);
        let (r0, r1) = std::thread::scope(|s| {
            let go = || {
                barrier.wait();
                b.create()
            };
            let t0 = s.spawn(go);
            let t1 = s.spawn(go);
            (t0.join().unwrap(), t1.join().unwrap())
        });
        assert!(
            r0.ok() != r1.ok(),
            "trial {trial}: exactly one create wins: {} / {}",
            describe(&r0),
            describe(&r1)
        );
        let loser = if r0.ok() { &r1 } else { &r0 };
        winners[usize::from(r1.ok())] += 1;
        assert_eq!(loser.status, Some(1), "trial {trial}: {}", describe(loser));
        assert!(
            loser.stderr.contains("already exists"),
            "trial {trial}: the loser says why: {}",
            describe(loser)
        );
        // The winner is intact: its state, its init, its cgroup.
        let r = b.rt(&["state", &b.id]);
        assert!(
            r.ok(),
            "trial {trial}: the winner's state: {}; the creates: {} / {}",
            describe(&r),
            describe(&r0),
            describe(&r1)
        );
        let st: Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(st["status"], "created", "trial {trial}: {st}");
        let pid = st["pid"].as_i64().unwrap() as i32;
        assert!(alive(pid), "trial {trial}: the winner's init {pid} lives");
        let dirs = cgroup_dirs(pid);
        let own: Vec<_> = dirs
            .iter()
            .filter(|d| d.to_string_lossy().contains(&b.id))
            .collect();
        assert!(
            !own.is_empty(),
            "trial {trial}: the init is in its container's cgroup: {dirs:?}"
        );
        for d in own {
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            assert!(
                procs.lines().any(|l| l.trim() == pid.to_string()),
                "trial {trial}: {} holds the init {pid}: {procs:?}",
                d.display()
            );
        }
        let r = b.rt(&["start", &b.id]);
        assert!(r.ok(), "trial {trial}: start the winner: {}", describe(&r));
        assert_eq!(b.status().as_deref(), Some("running"), "trial {trial}");
        let r = b.rt(&["delete", "--force", &b.id]);
        assert!(r.ok(), "trial {trial}: delete the winner: {}", describe(&r));
        // Dropping the bundle checks that nothing is left.
    }
    say(&format!(
        "two_creates_of_one_id: first thread won {}, second {}",
        winners[0], winners[1]
    ));
}

#[test]
fn delete_force_racing_start() {
    if !can_run("delete_force_racing_start") {
        return;
    }
    let mut outcomes = std::collections::BTreeMap::new();
    for trial in 0..12u64 {
        let b = Bundle::new("conc-delstart", &["sleep", "100"]);
        let r = b.create();
        assert!(r.ok(), "trial {trial}: create: {}", describe(&r));
        let limit = Duration::from_secs(15);
        let barrier = Barrier::new(2);
        // Spread the two over each other's windows: start first by 0-3 ms, or delete first.
        let (start_delay, delete_delay) = if trial % 2 == 0 {
            (0, trial / 2 % 4)
        } else {
            (trial / 2 % 4, 0)
        };
        let (start, delete) = std::thread::scope(|s| {
            let st = s.spawn(|| {
                barrier.wait();
                std::thread::sleep(Duration::from_millis(start_delay));
                output_within(b.cmd(&["start", &b.id]), limit)
            });
            let del = s.spawn(|| {
                barrier.wait();
                std::thread::sleep(Duration::from_millis(delete_delay));
                output_within(b.cmd(&["delete", "--force", &b.id]), limit)
            });
            (st.join().unwrap(), del.join().unwrap())
        });
        assert!(
            delete.ok(),
            "trial {trial}: delete --force: {}",
            describe(&delete)
        );
        assert!(
            start.ok() || (start.status == Some(1) && gone_or_stopped(&start.stderr)),
            "trial {trial}: start fails only as not running or not existing: {}",
            describe(&start)
        );
        let outcome = if start.ok() {
            "started"
        } else if start.stderr.contains("does not exist") {
            "does not exist"
        } else {
            "stopped"
        };
        *outcomes.entry(outcome).or_insert(0) += 1;
        let r = b.rt(&["state", &b.id]);
        assert!(
            r.status == Some(1) && r.stderr.contains("does not exist"),
            "trial {trial}: deleted: {}",
            describe(&r)
        );
    }
    say(&format!(
        "delete_force_racing_start: start's outcomes: {outcomes:?}"
    ));
}

/// Make a host process (`sleep`) with pid `pid`, which must be free, through
/// /proc/sys/kernel/ns_last_pid; None when other forks keep taking it.
fn process_with_pid(pid: i32) -> Option<std::process::Child> {
    for _ in 0..50 {
        if std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).is_err() {
            return None;
        }
        let child = Command::new("sleep").arg("100").spawn().ok()?;
        if child.id() as i32 == pid {
            return Some(child);
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}

/// Programs that exit at once or after a few milliseconds, so that the kills land before,
/// during and after the exit.
const QUICK_EXITS: [&[&str]; 6] = [
    &["true"],
    &["usleep", "1000"],
    &["usleep", "3000"],
    &["usleep", "10000"],
    &["usleep", "30000"],
    &["true"],
];

#[test]
fn kill_racing_the_init_exit() {
    if !can_run("kill_racing_the_init_exit") {
        return;
    }
    let mut stopped = Vec::new();
    let mut sent = Vec::new();
    for (trial, args) in QUICK_EXITS.iter().enumerate() {
        let b = Bundle::new("conc-killexit", args);
        let r = b.create();
        assert!(r.ok(), "trial {trial}: create: {}", describe(&r));
        let pid = b.state().unwrap()["pid"].as_i64().unwrap() as i32;
        let r = b.rt(&["start", &b.id]);
        assert!(r.ok(), "trial {trial}: start: {}", describe(&r));
        // Signals as fast as they go while the program exits (TERM is ignored by a pid
        // namespace's init without a handler: the program exits by itself): each is sent, or
        // refused as "not running" once the runtime sees the container stopped.
        let sig = ["KILL", "TERM"][trial % 2];
        let mut n = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = b.rt(&["kill", &b.id, sig]);
            if r.ok() {
                n += 1;
                assert!(
                    Instant::now() < deadline,
                    "trial {trial}: {args:?} still running after {n} kills in 30 s"
                );
                continue;
            }
            assert!(
                r.status == Some(1) && r.stderr.contains("not running"),
                "trial {trial}: kill {sig} after {n} sent: {}",
                describe(&r)
            );
            break;
        }
        sent.push(n);
        assert!(b.wait_status("stopped"), "trial {trial}: stopped");
        stopped.push((b, pid));
    }
    // Each init is gone; once its pid is free, a host process that takes it must never get
    // the container's signals. (The zombies are reaped by whoever is their parent now, which
    // may take a while: wait for all at once.)
    let deadline = Instant::now() + Duration::from_secs(10);
    while stopped
        .iter()
        .any(|(_, pid)| Path::new(&format!("/proc/{pid}")).exists())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut reused = 0;
    for (trial, (b, pid)) in stopped.iter().enumerate() {
        if let Some(mut other) = process_with_pid(*pid) {
            reused += 1;
            for args in [
                ["kill", b.id.as_str(), "KILL"],
                ["kill", b.id.as_str(), "TERM"],
            ] {
                let r = b.rt(&args);
                assert!(
                    r.status == Some(1) && r.stderr.contains("not running"),
                    "trial {trial}: {args:?} with the pid {pid} reused: {}",
                    describe(&r)
                );
            }
            let r = b.rt(&["kill", "--all", &b.id, "KILL"]);
            assert!(
                r.ok() || (r.status == Some(1) && gone_or_stopped(&r.stderr)),
                "trial {trial}: kill --all: {}",
                describe(&r)
            );
            let r = b.rt(&["delete", "--force", &b.id]);
            assert!(r.ok(), "trial {trial}: delete --force: {}", describe(&r));
            let untouched = other.try_wait().unwrap().is_none();
            let _ = other.kill();
            let _ = other.wait();
            assert!(
                untouched,
                "trial {trial}: the host process that reused pid {pid} was signalled"
            );
        }
        let r = b.rt(&["delete", &b.id]);
        assert!(
            r.ok() || (r.status == Some(1) && r.stderr.contains("does not exist")),
            "trial {trial}: delete: {}",
            describe(&r)
        );
    }
    say(&format!(
        "kill_racing_the_init_exit: kills sent before \"not running\": {sent:?}; the init's \
         pid reused by a host process in {reused} of {} trials (0: other forks took the pids, \
         or /proc/sys/kernel/ns_last_pid is not writable)",
        QUICK_EXITS.len()
    ));
}

/// `delete --force` of `b` returns 0 within 10 s (the hook test's bound is tighter).
fn delete_force_within(b: &Bundle, bound: Duration) -> Duration {
    let t = Instant::now();
    let r = output_within(
        b.cmd(&["delete", "--force", &b.id]),
        Duration::from_secs(30),
    );
    let took = t.elapsed();
    assert!(r.ok(), "delete --force: {}", describe(&r));
    assert!(
        took < bound,
        "delete --force took {took:?}, bound {bound:?}"
    );
    let r = b.rt(&["state", &b.id]);
    assert!(
        r.status == Some(1) && r.stderr.contains("does not exist"),
        "deleted: {}",
        describe(&r)
    );
    took
}

#[test]
fn delete_force_of_a_paused_container() {
    if !can_run("delete_force_of_a_paused_container") {
        return;
    }
    let b = Bundle::new("conc-paused", &["sleep", "100"]);
    assert!(b.run_detached().ok());
    let r = b.rt(&["pause", &b.id]);
    assert!(r.ok(), "pause: {}", describe(&r));
    assert_eq!(b.status().as_deref(), Some("paused"));
    let took = delete_force_within(&b, Duration::from_secs(10));
    say(&format!("delete --force of a paused container: {took:?}"));
}

#[test]
fn delete_force_of_an_init_that_ignores_sigterm() {
    if !can_run("delete_force_of_an_init_that_ignores_sigterm") {
        return;
    }
    let b = Bundle::new("conc-noterm", &["sh", "-c", "trap '' TERM; sleep 1000"]);
    assert!(b.run_detached().ok());
    let pid = b.state().unwrap()["pid"].as_i64().unwrap() as i32;
    // Wait until the shell has set SIGTERM to ignored (SigIgn, bit 15).
    let ignores_term = || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .is_some_and(|m| m & (1 << (libc::SIGTERM - 1)) != 0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ignores_term() {
        assert!(Instant::now() < deadline, "the init never ignores SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = b.rt(&["kill", &b.id, "TERM"]);
    assert!(r.ok(), "kill TERM: {}", describe(&r));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        b.status().as_deref(),
        Some("running"),
        "the init ignores SIGTERM"
    );
    let took = delete_force_within(&b, Duration::from_secs(10));
    say(&format!(
        "delete --force of an init that ignores SIGTERM: {took:?}"
    ));
}

#[test]
fn delete_force_with_a_hanging_poststop_hook() {
    if !can_run("delete_force_with_a_hanging_poststop_hook") {
        return;
    }
    let mut b = Bundle::new("conc-hookhang", &["sleep", "100"]);
    // The hook's argv names the bundle (and so the container id): the leftover check finds it
    // if it outlives its timeout.
    let sleep = b.dir.join("hanging-hook");
    std::os::unix::fs::symlink("/bin/sleep", &sleep).unwrap();
    let sleep = sleep.to_str().unwrap();
    b.config["hooks"] = serde_json::json!({
        "poststop": [{"path": sleep, "args": [sleep, "100"], "timeout": 2}]
    });
    b.save();
    assert!(b.run_detached().ok());
    let took = delete_force_within(&b, Duration::from_secs(8));
    assert!(
        took >= Duration::from_secs(2),
        "the hook ran its 2 s: {took:?}"
    );
    // The hook was killed at its timeout.
    let hooks = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|p| p.file_name().to_str()?.parse::<i32>().ok())
            .filter(|p| cmdline(*p).contains(sleep))
            .collect::<Vec<_>>()
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    while !hooks().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(hooks(), Vec::<i32>::new(), "the hook outlived its timeout");
    say(&format!(
        "delete --force with a poststop hook that hangs (timeout 2): {took:?}"
    ));
}
