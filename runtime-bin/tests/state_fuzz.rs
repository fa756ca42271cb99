//! Damaged state on disk, fed to the real commands: a container is created, its `state.json`
//! replaced by a mutation of itself (bytes flipped, inserted or cut, fields of the wrong type
//! or gone, an empty file, a directory, a symlink), and every command that reads it runs:
//! `state`, `list`, `ps`, `events --stats`, `kill`, `pause`, `start`, `exec`, `delete`,
//! `delete --force`. Each must answer within its time limit with exit status 0 or 1 (`exec`:
//! 255), never a
//! crash, and an error names the container; afterwards the original state is put back and
//! `delete --force` must leave nothing. The mutations are deterministic (a seeded generator),
//! so a failure names the case that reproduces it.
mod common;

use std::path::Path;

use common::{can_run, is_casulo, Bundle, Run};
use serde_json::Value;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// What replaces state.json in one case.
enum Damage {
    Bytes(Vec<u8>),
    Missing,
    Directory,
    Symlink(&'static str),
}

/// Values of the wrong shape for a field.
fn odd_value(rng: &mut Rng) -> Value {
    match rng.below(9) {
        0 => Value::Null,
        1 => (-1).into(),
        2 => u64::MAX.into(),
        3 => 1e308.into(),
        4 => "".into(),
        5 => "x".repeat(1 << 20).into(),
        6 => Value::Array(vec![]),
        7 => serde_json::json!({"a": [1, {"b": null}]}),
        _ => true.into(),
    }
}

/// Case `n` of the damage done to `good`.
fn damage(n: u64, good: &[u8]) -> Damage {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (n + 1).wrapping_mul(0x1000_0001));
    let mut bytes = good.to_vec();
    match n % 10 {
        0 => bytes.truncate(rng.below(good.len())),
        1 | 2 => {
            let i = rng.below(bytes.len());
            bytes[i] = rng.next() as u8;
        }
        3 => {
            let i = rng.below(bytes.len());
            let junk: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.next() as u8).collect();
            bytes.splice(i..i, junk);
        }
        4 | 5 => {
            let mut v: Value = serde_json::from_slice(good).unwrap();
            let keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            let key = &keys[rng.below(keys.len())];
            if n % 10 == 4 {
                v[key] = odd_value(&mut rng);
            } else {
                v.as_object_mut().unwrap().remove(key);
            }
            bytes = serde_json::to_vec(&v).unwrap();
        }
        6 => bytes.clear(),
        7 => return Damage::Missing,
        8 => return Damage::Directory,
        _ => {
            return Damage::Symlink(if n % 20 == 9 {
                "/etc/passwd"
            } else {
                "/nonexistent"
            })
        }
    }
    Damage::Bytes(bytes)
}

/// Whether a damaged state may be given to the commands that signal and remove: its pid and
/// cgroup directories are still the container's own (a flipped digit could otherwise name
/// a process or cgroup of the host's, which a real damaged state could too, but a test must
/// not risk). What cannot be parsed is always safe: no command acts on it.
fn safe_to_act_on(damaged: &Damage, good: &Value) -> bool {
    let Damage::Bytes(bytes) = damaged else {
        return true;
    };
    let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
        return true;
    };
    let same = |key: &str| v.get(key).is_none_or(|x| x.is_null() || *x == good[key]);
    same("pid") && same("cgroupPaths") && same("cgroup")
}

/// A command's answer to a damaged state: on time, 0 or 1 (255 for `exec`, as runc's), no
/// crash; an error names the container.
fn check(case: &str, what: &str, id: &str, r: &Run) {
    let failed = if what.starts_with("exec") { 255 } else { 1 };
    assert!(
        r.status == Some(0) || r.status == Some(failed),
        "{case}: {what}: exit status {:?} (a crash or a hang): {}",
        r.status,
        r.stderr
    );
    assert!(
        !r.stderr.contains("panicked"),
        "{case}: {what} panicked: {}",
        r.stderr
    );
    if r.status == Some(failed) && is_casulo() {
        assert!(
            r.stderr.contains(id) || r.stderr.contains("does not exist"),
            "{case}: {what}: the error does not name the container: {}",
            r.stderr
        );
    }
}

fn put(state: &Path, damaged: &Damage) {
    let _ = std::fs::remove_file(state);
    let _ = std::fs::remove_dir_all(state);
    match damaged {
        Damage::Bytes(b) => std::fs::write(state, b).unwrap(),
        Damage::Missing => {}
        Damage::Directory => std::fs::create_dir(state).unwrap(),
        Damage::Symlink(to) => std::os::unix::fs::symlink(to, state).unwrap(),
    }
}

#[test]
fn damaged_state_through_every_command() {
    let name = "damaged_state_through_every_command";
    if !can_run(name) {
        return;
    }
    for n in 0..40u64 {
        let b = Bundle::new("fuzzst", &["sleep", "100"]);
        let created = b.create();
        assert!(created.ok(), "create: {}", created.stderr);
        let dir = b.root.join(&b.id);
        let state = dir.join("state.json");
        let good_bytes = std::fs::read(&state).unwrap();
        let good: Value = serde_json::from_slice(&good_bytes).unwrap();
        let damaged = damage(n, &good_bytes);
        let act = safe_to_act_on(&damaged, &good);
        let case = format!("case {n}");
        eprintln!("{case}");
        put(&state, &damaged);

        let id = b.id.as_str();
        let mut commands: Vec<Vec<&str>> = vec![
            vec!["state", id],
            vec!["list"],
            vec!["list", "--format", "json"],
            vec!["ps", id],
            vec!["events", "--stats", id],
        ];
        if act {
            commands.extend([
                vec!["kill", id, "SIGCONT"],
                vec!["pause", id],
                vec!["resume", id],
                vec!["exec", id, "true"],
                vec!["start", id],
                vec!["delete", id],
                vec!["delete", "--force", id],
            ]);
        }
        for args in &commands {
            check(&case, &args.join(" "), id, &b.rt(args));
        }
        if matches!(damaged, Damage::Bytes(_)) && is_casulo() {
            // A state that does not parse is named, file and cause, by the command that reads it.
            if let Damage::Bytes(bytes) = &damaged {
                if serde_json::from_slice::<Value>(bytes).is_err() && dir.exists() {
                    let st = b.rt(&["state", id]);
                    assert!(
                        st.status == Some(1) && st.stderr.contains("state.json"),
                        "{case}: state of an unreadable state.json: {}",
                        st.stderr
                    );
                }
            }
        }

        // Put the good state back (in a state dir that delete may have removed) and clean up.
        std::fs::create_dir_all(&dir).unwrap();
        put(&state, &Damage::Bytes(good_bytes));
        let del = b.rt(&["delete", "--force", id]);
        assert!(
            del.ok(),
            "{case}: delete --force of the restored state: {}",
            del.stderr
        );
        assert_eq!(b.leftovers(), Vec::<String>::new(), "{case}: left behind");
    }
}

/// A state that names the cgroup but lost its directories (`cgroupPaths`): the commands find
/// the cgroup again from the cgroupsPath, and the status is read from that same cgroup. Once
/// `pause` froze it, the container is `paused`: `exec` refuses rather than joining a frozen
/// cgroup and waiting forever, `resume` thaws it, and `delete --force` kills it rather than
/// waiting on a frozen init.
#[test]
fn a_state_without_cgroup_paths_pauses_and_resumes_the_same_cgroup() {
    let name = "a_state_without_cgroup_paths_pauses_and_resumes_the_same_cgroup";
    if !can_run(name) || !is_casulo() {
        return;
    }
    let b = Bundle::new("fuzzcg", &["sleep", "100"]);
    let created = b.create();
    assert!(created.ok(), "create: {}", created.stderr);
    let id = b.id.as_str();
    let state = b.root.join(id).join("state.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert!(v.as_object_mut().unwrap().remove("cgroupPaths").is_some());
    std::fs::write(&state, serde_json::to_vec(&v).unwrap()).unwrap();
    for round in 0..2 {
        let p = b.rt(&["pause", id]);
        assert!(p.ok(), "pause {round}: {}", p.stderr);
        assert_eq!(b.status().as_deref(), Some("paused"), "after pause {round}");
        let e = b.rt(&["exec", id, "true"]);
        assert_eq!(e.status, Some(255), "exec into it: {}", e.stderr);
        assert!(e.stderr.contains("paused"), "exec: {}", e.stderr);
        if round == 0 {
            let r = b.rt(&["resume", id]);
            assert!(r.ok(), "resume: {}", r.stderr);
            assert_eq!(b.status().as_deref(), Some("created"), "after resume");
        }
    }
    let del = b.rt(&["delete", "--force", id]);
    assert!(del.ok(), "delete --force of the paused one: {}", del.stderr);
    assert_eq!(b.leftovers(), Vec::<String>::new(), "left behind");
}
