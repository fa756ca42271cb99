//! The device program checked without the kernel: a verifier-like structural check and an
//! interpreter of the instructions it emits, against a reference evaluation of the rules.
use super::*;
use crate::cgroups::default_allowed_devices;

/// A rule from `allow|deny TYPE [MAJOR:MINOR [ACCESS]]`, `*` for any number.
fn rule(text: &str) -> LinuxDeviceCgroup {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(match words[0] {
        "allow" => true,
        "deny" => false,
        w => panic!("bad verb {w}"),
    });
    r.set_typ(Some(match words[1] {
        "a" => LinuxDeviceType::A,
        "b" => LinuxDeviceType::B,
        "c" => LinuxDeviceType::C,
        "u" => LinuxDeviceType::U,
        "p" => LinuxDeviceType::P,
        t => panic!("bad type {t}"),
    }));
    if let Some(nums) = words.get(2) {
        let (maj, min) = nums.split_once(':').unwrap();
        let n = |s: &str| (s != "*").then(|| s.parse::<i64>().unwrap());
        r.set_major(n(maj));
        r.set_minor(n(min));
    }
    r.set_access(words.get(3).map(|s| s.to_string()));
    r
}

fn rules(texts: &[&str]) -> Vec<LinuxDeviceCgroup> {
    texts.iter().map(|t| rule(t)).collect()
}

// --- A test double of the kernel: the verifier's structural checks and an interpreter of
// --- the instructions the compiler emits.

/// What the verifier would refuse: jumps backwards or out of the program, code that no
/// path reaches, a path that runs off the end, an opcode this double does not know.
fn verify(prog: &[Insn]) {
    assert!(!prog.is_empty(), "empty program");
    let mut reached = vec![false; prog.len()];
    let mut todo = vec![0usize];
    while let Some(pc) = todo.pop() {
        if reached[pc] {
            continue;
        }
        reached[pc] = true;
        let insn = prog[pc];
        let mut next = |to: usize| {
            assert!(to < prog.len(), "insn {pc} leads past the end: {insn:?}");
            todo.push(to);
        };
        match insn.code {
            c if c == JMP | EXIT => {}
            c if c & 0x07 == JMP32 => {
                assert!(insn.off >= 0, "backward jump at {pc}");
                next(pc + 1);
                next(pc + 1 + insn.off as usize);
            }
            c if [
                LDX | MEM | W,
                ALU | MOV | X,
                ALU | MOV | K,
                ALU | AND | K,
                ALU | RSH | K,
            ]
            .contains(&c) =>
            {
                next(pc + 1)
            }
            c => panic!("opcode {c:#04x} at {pc} is not one the compiler should emit"),
        }
    }
    if let Some(pc) = reached.iter().position(|r| !r) {
        panic!("unreachable instruction {pc}: {:?}", prog[pc]);
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Val {
    Ctx,
    Num(u64),
}

/// Run `prog` on `struct bpf_cgroup_dev_ctx { access_type, major, minor }`: its verdict.
fn run(prog: &[Insn], ctx: [u32; 3]) -> bool {
    let mut regs: [Option<Val>; 11] = [None; 11];
    regs[1] = Some(Val::Ctx);
    let num = |regs: &[Option<Val>; 11], r: u8| match regs[r as usize] {
        Some(Val::Num(n)) => n,
        other => panic!("r{r} read as a number while {other:?}"),
    };
    let mut pc = 0;
    loop {
        let i = prog[pc];
        let (dst, src) = (i.dst(), i.src());
        pc += 1;
        match i.code {
            c if c == LDX | MEM | W => {
                assert_eq!(
                    regs[src as usize],
                    Some(Val::Ctx),
                    "load from a non-context"
                );
                let field = match i.off {
                    0 => 0,
                    4 => 1,
                    8 => 2,
                    off => panic!("context offset {off}"),
                };
                regs[dst as usize] = Some(Val::Num(ctx[field].into()));
            }
            c if c == ALU | MOV | X => {
                regs[dst as usize] = Some(Val::Num(num(&regs, src) & 0xffff_ffff))
            }
            c if c == ALU | MOV | K => regs[dst as usize] = Some(Val::Num(i.imm as u32 as u64)),
            c if c == ALU | AND | K => {
                let v = num(&regs, dst) as u32 & i.imm as u32;
                regs[dst as usize] = Some(Val::Num(v.into()));
            }
            c if c == ALU | RSH | K => {
                let v = (num(&regs, dst) as u32) >> (i.imm as u32);
                regs[dst as usize] = Some(Val::Num(v.into()));
            }
            c if c == JMP32 | JNE | K || c == JMP32 | JEQ | K => {
                let equal = num(&regs, dst) as u32 == i.imm as u32;
                if equal == (c == JMP32 | JEQ | K) {
                    pc += i.off as usize;
                }
            }
            c if c == JMP | EXIT => {
                return match num(&regs, R0) {
                    0 => false,
                    1 => true,
                    v => panic!("verdict {v}"),
                };
            }
            c => panic!("opcode {c:#04x}"),
        }
    }
}

// --- The reference: the rules evaluated directly, bit by bit, last match wins.

fn reference(rules: &[LinuxDeviceCgroup], typ: u32, major: u32, minor: u32, acc: u32) -> bool {
    let device_matches = |r: &LinuxDeviceCgroup| {
        let typ_ok = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => true,
            LinuxDeviceType::B => typ == DEV_BLOCK,
            _ => typ == DEV_CHAR,
        };
        let num_ok = |want: Option<i64>, got: u32| match want {
            None | Some(-1) => true,
            Some(n) => n == i64::from(got),
        };
        typ_ok && num_ok(r.major(), major) && num_ok(r.minor(), minor)
    };
    let names = |r: &LinuxDeviceCgroup, letter: Option<char>| {
        let access = r.access().clone().filter(|a| !a.is_empty());
        letter.is_none_or(|l| access.unwrap_or_else(|| "rwm".into()).contains(l))
    };
    let mut asked: Vec<Option<char>> = [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')]
        .iter()
        .filter(|(bit, _)| acc & bit != 0)
        .map(|&(_, l)| Some(l))
        .collect();
    if asked.is_empty() {
        asked.push(None);
    }
    // Each rule, in order, sets the bits it names on the devices it matches.
    asked.iter().all(|&letter| {
        rules.iter().fold(false, |allowed, r| {
            if device_matches(r) && names(r, letter) {
                r.allow()
            } else {
                allowed
            }
        })
    })
}

const TYPES: [u32; 2] = [DEV_BLOCK, DEV_CHAR];
const MAJORS: [u32; 11] = [0, 1, 4, 5, 7, 8, 10, 136, 4095, 0x8000_0000, u32::MAX];
const MINORS: [u32; 12] = [0, 1, 2, 3, 5, 7, 8, 9, 200, 0xf_ffff, 0x8000_0001, u32::MAX];

/// Compile, verify, and compare the program with the reference on every request of the
/// grid. Returns the program.
fn check_against_reference(rules: &[LinuxDeviceCgroup]) -> Vec<Insn> {
    let prog = device_program(rules).unwrap();
    verify(&prog);
    for typ in TYPES {
        for major in MAJORS {
            for minor in MINORS {
                for acc in 0..=7 {
                    let want = reference(rules, typ, major, minor, acc);
                    let got = run(&prog, [acc << 16 | typ, major, minor]);
                    assert_eq!(
                        got, want,
                        "type {typ} {major}:{minor} access {acc:#b} with rules {rules:?}"
                    );
                }
            }
        }
    }
    prog
}

/// The verdict for one request, e.g. `decide(&prog, 'c', 1, 3, "rw")`.
fn decide(prog: &[Insn], typ: char, major: u32, minor: u32, access: &str) -> bool {
    let typ = if typ == 'b' { DEV_BLOCK } else { DEV_CHAR };
    let acc = access.chars().fold(0, |a, c| {
        a | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => panic!("{c}"),
        }
    });
    run(prog, [acc << 16 | typ, major, minor])
}

const PROLOGUE: usize = 8;

#[test]
fn cgroups_bpf_encoding_matches_struct_bpf_insn() {
    let b = load_word(R2, R1, CTX_MAJOR).to_bytes();
    assert_eq!(b[0], 0x61, "BPF_LDX | BPF_MEM | BPF_W");
    assert_eq!(&b[2..4], &4i16.to_ne_bytes());
    assert_eq!(&b[4..], &[0; 4]);
    if cfg!(target_endian = "little") {
        assert_eq!(b[1], 0x12, "dst_reg in the low nibble");
    }
    let j = jmp32_imm(JNE, R4, u32::MAX);
    assert_eq!(j.code, 0x56, "BPF_JMP32 | BPF_JNE | BPF_K");
    assert_eq!((j.dst(), j.src()), (R4, 0));
    assert_eq!(&j.to_bytes()[4..], &[0xff; 4]);
    assert_eq!(exit().code, 0x95);
    assert_eq!(alu32_imm(MOV, R0, 1).code, 0xb4);
    assert_eq!(mov32_reg(R1, R3).code, 0xbc);
    assert_eq!((mov32_reg(R1, R3).dst(), mov32_reg(R1, R3).src()), (R1, R3));
}

#[test]
fn cgroups_bpf_empty_and_deny_all_deny_everything() {
    for set in [
        rules(&[]),
        rules(&["deny a"]),
        rules(&["allow a", "deny a"]),
    ] {
        let prog = check_against_reference(&set);
        for (t, maj, min) in [('c', 1, 3), ('b', 8, 0), ('c', 136, 0)] {
            for acc in ["r", "w", "m", "rwm"] {
                assert!(!decide(&prog, t, maj, min, acc), "{set:?}: {t} {maj}:{min}");
            }
        }
    }
    // A final deny-all makes everything before it dead code, which is left out.
    let prog = device_program(&rules(&["allow a", "allow c 1:3", "deny a"])).unwrap();
    assert_eq!(prog.len(), PROLOGUE + 2);
}

#[test]
fn cgroups_bpf_runc_default_devices() {
    let mut set = rules(&["deny a"]);
    set.extend(default_allowed_devices());
    let prog = check_against_reference(&set);
    for (maj, min) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (5, 0),
        (5, 2),
        (1, 8),
        (1, 9),
        (10, 200),
    ] {
        assert!(decide(&prog, 'c', maj, min, "rw"), "c {maj}:{min} rw");
        assert!(decide(&prog, 'c', maj, min, "rwm"), "c {maj}:{min} rwm");
    }
    for min in [0, 1, 7, 4095] {
        assert!(decide(&prog, 'c', 136, min, "rw"), "pts {min}");
    }
    // mknod of any device, but no access to what is not listed.
    assert!(decide(&prog, 'b', 8, 0, "m"));
    assert!(decide(&prog, 'c', 4, 1, "m"));
    assert!(!decide(&prog, 'b', 8, 0, "r"));
    assert!(!decide(&prog, 'b', 8, 0, "rm"));
    assert!(!decide(&prog, 'c', 4, 1, "w"));
    assert!(
        !decide(&prog, 'c', 5, 1, "rw"),
        "the console is not a default"
    );
    assert!(!decide(&prog, 'c', 10, 229, "r"), "fuse is not a default");
    assert!(
        !decide(&prog, 'b', 1, 3, "r"),
        "1:3 is allowed as a char device only"
    );

    // A config rule that allows a device the defaults do not.
    set.push(rule("allow c 5:1 rwm"));
    let prog = check_against_reference(&set);
    assert!(decide(&prog, 'c', 5, 1, "rw"));
    assert!(!decide(&prog, 'c', 5, 3, "rw"));
}

#[test]
fn cgroups_bpf_wildcards() {
    let set = rules(&[
        "deny a",
        "allow c 1:* r",
        "allow b *:0 rw",
        "allow a 7:* m",
        "allow a *:3 w",
        "allow u 4:1",
    ]);
    let prog = check_against_reference(&set);
    assert!(decide(&prog, 'c', 1, 200, "r"));
    assert!(!decide(&prog, 'c', 1, 200, "rw"));
    assert!(decide(&prog, 'b', 259, 0, "rw"));
    assert!(!decide(&prog, 'b', 259, 1, "r"));
    assert!(
        !decide(&prog, 'c', 259, 0, "r"),
        "b *:0 is for block devices only"
    );
    assert!(decide(&prog, 'b', 7, 12, "m"));
    assert!(decide(&prog, 'c', 7, 12, "m"));
    assert!(!decide(&prog, 'c', 7, 12, "r"));
    assert!(decide(&prog, 'b', 99, 3, "w"));
    assert!(decide(&prog, 'c', 1, 3, "rw"), "c 1:* r plus a *:3 w");
    assert!(decide(&prog, 'c', 4, 1, "rwm"), "type u is a char device");
    assert!(!decide(&prog, 'b', 4, 1, "r"));
    // An explicit -1 is a wildcard too, and an empty access string means rwm.
    let mut r = rule("allow c 1:3");
    r.set_major(Some(-1));
    r.set_access(Some(String::new()));
    let set = vec![rule("deny a"), r];
    let prog = check_against_reference(&set);
    assert!(decide(&prog, 'c', 42, 3, "rwm"));
    assert!(!decide(&prog, 'c', 42, 4, "r"));
}

#[test]
fn cgroups_bpf_allow_all_then_deny() {
    let set = rules(&["deny a", "allow a", "deny c 1:3 w", "deny b 8:*"]);
    let prog = check_against_reference(&set);
    assert!(decide(&prog, 'c', 1, 3, "r"));
    assert!(decide(&prog, 'c', 1, 3, "m"));
    assert!(!decide(&prog, 'c', 1, 3, "w"));
    assert!(!decide(&prog, 'c', 1, 3, "rw"), "a deny of w closes rw too");
    assert!(decide(&prog, 'c', 1, 5, "rw"));
    assert!(!decide(&prog, 'b', 8, 1, "r"));
    assert!(decide(&prog, 'b', 9, 1, "rwm"));
    // The allow-all rule ends the walk: the program is the one of the rules after it with
    // `return 1` in place of the final `return 0`, and the deny-all is not emitted.
    let after = device_program(&set[2..]).unwrap();
    let n = after.len();
    assert_eq!(prog.len(), n);
    assert_eq!(prog[..n - 2], after[..n - 2]);
    assert_eq!(prog[n - 2..], ret(true));
    assert_eq!(after[n - 2..], ret(false));
}

#[test]
fn cgroups_bpf_access_subsets() {
    let prog = check_against_reference(&rules(&["deny a", "allow c 1:3 r"]));
    assert!(decide(&prog, 'c', 1, 3, "r"));
    assert!(!decide(&prog, 'c', 1, 3, "rw"), "rule r, request rw");
    assert!(!decide(&prog, 'c', 1, 3, "w"));
    assert!(!decide(&prog, 'c', 1, 3, "m"));
    // Bits granted by separate rules add up, as v1 merges them.
    let prog = check_against_reference(&rules(&["deny a", "allow c 1:3 r", "allow c 1:3 w"]));
    assert!(decide(&prog, 'c', 1, 3, "rw"));
    assert!(!decide(&prog, 'c', 1, 3, "rwm"));
    // A later deny of one bit takes it away from a wider allow.
    let prog = check_against_reference(&rules(&["deny a", "allow c 1:3 rwm", "deny c 1:3 w"]));
    assert!(decide(&prog, 'c', 1, 3, "rm"));
    assert!(!decide(&prog, 'c', 1, 3, "rw"));
    // A later allow gives a bit back.
    let prog = check_against_reference(&rules(&[
        "deny a",
        "allow c 1:3",
        "deny c *:* w",
        "allow c 1:3 w",
    ]));
    assert!(decide(&prog, 'c', 1, 3, "rw"));
    assert!(!decide(&prog, 'c', 1, 5, "w"));
}

#[test]
fn cgroups_bpf_no_access_bit_asked_uses_last_matching_rule() {
    let prog = check_against_reference(&rules(&["deny a", "allow c 1:3 r"]));
    assert!(run(&prog, [DEV_CHAR, 1, 3]));
    assert!(!run(&prog, [DEV_CHAR, 1, 4]));
}

/// Many small random rule lists (fixed seed) against the reference.
#[test]
fn cgroups_bpf_random_rule_lists_match_reference() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let types = ["a", "b", "c"];
    let nums = [
        "*",
        "0",
        "1",
        "3",
        "8",
        "136",
        "4095",
        "2147483648",
        "4294967295",
    ];
    let accesses = ["", "r", "w", "m", "rw", "rm", "wm", "rwm", "mwr"];
    for _ in 0..300 {
        let count = next(7);
        let mut texts = Vec::new();
        for _ in 0..count {
            let verb = if next(2) == 0 { "allow" } else { "deny" };
            let acc = accesses[next(accesses.len())];
            texts.push(format!(
                "{verb} {} {}:{} {}",
                types[next(types.len())],
                nums[next(nums.len())],
                nums[next(nums.len())],
                if acc.is_empty() { "rwm" } else { acc }
            ));
        }
        let set: Vec<LinuxDeviceCgroup> = texts.iter().map(|t| rule(t)).collect();
        check_against_reference(&set);
    }
}

#[test]
fn cgroups_bpf_rejects_malformed_rules() {
    let msg = |set: Vec<LinuxDeviceCgroup>| match device_program(&set) {
        Err(CgroupError::Resource { resource, msg, .. }) => {
            assert_eq!(resource, "devices");
            msg
        }
        other => panic!("expected a Resource error, got {other:?}"),
    };
    let m = msg(rules(&["deny a", "allow c 1:3 rx"]));
    assert!(m.contains("rule 1") && m.contains("'x'"), "{m}");
    assert!(msg(rules(&["allow p 1:3 r"])).contains("FIFO"));
    let mut r = rule("allow c 1:3 r");
    r.set_major(Some(-2));
    assert!(msg(vec![r.clone()]).contains("major -2"));
    r.set_major(Some(1));
    r.set_minor(Some(1 << 32));
    assert!(msg(vec![r]).contains("minor 4294967296"));
}

// --- In the kernel (root, cgroup2).

/// A cgroup2 directory made for a test, emptied and removed on drop.
struct TestCgroup {
    dir: std::path::PathBuf,
    root: std::path::PathBuf,
}

impl TestCgroup {
    fn new(root: &Path, name: &str) -> TestCgroup {
        let dir = root.join(format!("casulo-bpf-test-{}-{name}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        TestCgroup {
            dir,
            root: root.to_path_buf(),
        }
    }

    /// Program ids attached to the directory and the attach flags.
    fn attached(&self) -> (u32, Vec<u32>) {
        let d = std::fs::File::open(&self.dir).unwrap();
        sys::prog_query(d.as_fd(), sys::ATTACH_CGROUP_DEVICE).unwrap()
    }

    /// A shell moves itself into the cgroup and tries to open devices.
    fn probe(&self) -> String {
        let script = r#"
            echo $$ > "$1/cgroup.procs" || exit 90
            probe() { if ( eval ": $2" ); then echo "$1=ok"; else echo "$1=denied"; fi; }
            probe zero_r '</dev/zero'
            probe zero_w '>/dev/zero'
            probe null_rw '<>/dev/null'
            probe full_r '</dev/full'
        "#;
        let out = std::process::Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "probe failed: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stderr.lines() {
            assert!(line.contains("not permitted"), "unexpected error: {line}");
        }
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for pid in procs.split_whitespace() {
                let _ = std::fs::write(self.root.join("cgroup.procs"), pid);
            }
        }
        for _ in 0..50 {
            match std::fs::remove_dir(&self.dir) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                _ => break,
            }
        }
    }
}

/// Where cgroup2 is mounted on this host, if anywhere it can be used.
fn cgroup2_root() -> Result<std::path::PathBuf, String> {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root".into());
    }
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .find(|p| matches!(statfs(*p), Ok(s) if s.filesystem_type() == CGROUP2_SUPER_MAGIC))
        .map(std::path::PathBuf::from)
        .ok_or_else(|| "no cgroup2 mount at /sys/fs/cgroup or /sys/fs/cgroup/unified".into())
}

#[test]
fn cgroups_bpf_device_program_in_kernel() {
    let root = match cgroup2_root() {
        Ok(r) => r,
        Err(why) => {
            eprintln!("SKIPPED: cgroups_bpf_device_program_in_kernel: {why}");
            return;
        }
    };
    let cg = TestCgroup::new(&root, "multi");
    apply_device_program(&cg.dir, &rules(&["deny a", "allow c 1:3 rw"])).unwrap();
    assert_eq!(
        cg.probe(),
        "zero_r=denied zero_w=denied null_rw=ok full_r=denied"
    );
    let (flags, first) = cg.attached();
    assert_eq!(first.len(), 1, "one program attached");
    assert_eq!(flags & sys::F_ALLOW_MULTI, sys::F_ALLOW_MULTI);

    // Replace the rules, as update does: /dev/zero readable now, not writable.
    apply_device_program(
        &cg.dir,
        &rules(&["deny a", "allow c 1:3 rw", "allow c 1:5 r"]),
    )
    .unwrap();
    assert_eq!(
        cg.probe(),
        "zero_r=ok zero_w=denied null_rw=ok full_r=denied"
    );
    let (_, second) = cg.attached();
    assert_eq!(second.len(), 1, "the old program is detached: {second:?}");
    assert_ne!(second, first);

    // A program attached by someone else without BPF_F_ALLOW_MULTI is replaced in place.
    let other = TestCgroup::new(&root, "exclusive");
    let deny_all: Vec<[u8; 8]> = device_program(&rules(&["deny a"]))
        .unwrap()
        .into_iter()
        .map(Insn::to_bytes)
        .collect();
    let prog = load(&deny_all).unwrap();
    let d = std::fs::File::open(&other.dir).unwrap();
    sys::prog_attach(d.as_fd(), prog.as_fd(), sys::ATTACH_CGROUP_DEVICE, 0).unwrap();
    assert_eq!(
        other.probe(),
        "zero_r=denied zero_w=denied null_rw=denied full_r=denied"
    );
    let (_, before) = other.attached();
    apply_device_program(&other.dir, &rules(&["deny a", "allow c 1:7 r"])).unwrap();
    assert_eq!(
        other.probe(),
        "zero_r=denied zero_w=denied null_rw=denied full_r=ok"
    );
    let (flags, after) = other.attached();
    assert_eq!((flags, after.len()), (0, 1), "{after:?}");
    assert_ne!(after, before);

    // A rule the compiler refuses names the cgroup directory.
    let err = apply_device_program(&cg.dir, &rules(&["allow c 1:3 q"])).unwrap_err();
    assert!(
        err.to_string().contains(&cg.dir.display().to_string()),
        "{err}"
    );
}

#[test]
fn cgroups_bpf_verifier_log_in_error() {
    if let Err(why) = cgroup2_root() {
        eprintln!("SKIPPED: cgroups_bpf_verifier_log_in_error: {why}");
        return;
    }
    // Reads R0 before writing it: the verifier refuses, and says why.
    let bad = [exit().to_bytes()];
    let msg = load(&bad).unwrap_err();
    assert!(msg.contains("verifier log") && msg.contains("R0"), "{msg}");
}
