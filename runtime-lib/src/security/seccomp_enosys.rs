//! The ENOSYS prologue of a seccomp filter.
//!
//! A profile that denies by default (SCMP_ACT_ERRNO, SCMP_ACT_KILL…) lists the syscalls it
//! allows, as known when it was written. A syscall added to the kernel later is then denied
//! with the default action, typically EPERM, and programs (and C libraries) that probe for a
//! new syscall and fall back to an old one only do so on ENOSYS, the kernel's answer for a
//! syscall it does not have. So, as the reference runtime does, a syscall whose number is
//! above every syscall the profile names (for the architecture it is made in) gets ENOSYS:
//! to the program it looks like a syscall this kernel does not have.
//!
//! This is a short BPF program put before libseccomp's: per architecture of the filter
//! (the profile's, and always the native one), it compares the syscall number with the
//! highest the profile names there and returns ENOSYS above it; everything else (another
//! architecture, a lower number) goes on to libseccomp's program, which starts by loading the
//! architecture again. On x86_64 the x32 ABI shares the architecture token and marks its
//! syscalls with bit 30: those are compared with the highest x32 number when the profile has
//! SCMP_ARCH_X32 and are otherwise left to the filter. On s390 and s390x syscall 0 is what the
//! kernel multiplexes unknown syscall numbers through; it gets ENOSYS too.
//!
//! A profile whose default action lets syscalls through (SCMP_ACT_ALLOW, SCMP_ACT_LOG,
//! SCMP_ACT_TRACE, whose tracer handles new syscalls itself) needs none, nor one whose
//! default errno already is ENOSYS.

use libseccomp::{ScmpArch, ScmpSyscall};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction};

/// `struct seccomp_data`: the syscall number at offset 0, the audit architecture at 4.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
/// The x32 ABI's mark on its syscall numbers (`__X32_SYSCALL_BIT`).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
/// s390's multiplexing syscall (`setup`, number 0).
const S390_MULTIPLEX: u32 = 0;

/// Classic BPF opcodes (`linux/bpf_common.h`).
const LD_W_ABS: u16 = 0x20;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGT_K: u16 = 0x25;
const JMP_JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;

/// The kernel's `AUDIT_ARCH_*` token of a libseccomp architecture (`linux/audit.h`: the ELF
/// machine, with 0x8000_0000 for 64 bit and 0x4000_0000 for little endian). x32 shares
/// x86_64's.
fn audit_arch(arch: ScmpArch) -> Option<u32> {
    const B64: u32 = 0x8000_0000;
    const LE: u32 = 0x4000_0000;
    const MIPS_N32: u32 = 0x2000_0000;
    Some(match arch {
        ScmpArch::X86 => 3 | LE,
        ScmpArch::X8664 | ScmpArch::X32 => 62 | B64 | LE,
        ScmpArch::Arm => 40 | LE,
        ScmpArch::Aarch64 => 183 | B64 | LE,
        ScmpArch::Mips => 8,
        ScmpArch::Mipsel => 8 | LE,
        ScmpArch::Mips64 => 8 | B64,
        ScmpArch::Mipsel64 => 8 | B64 | LE,
        ScmpArch::Mips64N32 => 8 | B64 | MIPS_N32,
        ScmpArch::Mipsel64N32 => 8 | B64 | LE | MIPS_N32,
        ScmpArch::Ppc => 20,
        ScmpArch::Ppc64 => 21 | B64,
        ScmpArch::Ppc64Le => 21 | B64 | LE,
        ScmpArch::S390 => 22,
        ScmpArch::S390X => 22 | B64,
        ScmpArch::Parisc => 15,
        ScmpArch::Parisc64 => 15 | B64,
        ScmpArch::Riscv64 => 243 | B64 | LE,
        ScmpArch::Loongarch64 => 258 | B64 | LE,
        // Not given a prologue: their syscalls go straight to the filter.
        _ => return None,
    })
}

/// Whether the prologue is needed for this profile.
fn wanted(seccomp: &LinuxSeccomp) -> bool {
    let lets_through = matches!(
        seccomp.default_action(),
        LinuxSeccompAction::ScmpActAllow
            | LinuxSeccompAction::ScmpActLog
            | LinuxSeccompAction::ScmpActTrace
    );
    let errno_is_enosys = seccomp.default_action() == LinuxSeccompAction::ScmpActErrno
        && seccomp.default_errno_ret() == Some(libc::ENOSYS as u32);
    !lets_through && !errno_is_enosys
}

/// The highest number, in architecture `arch`, of a syscall the profile names (None if it
/// names none libseccomp knows there). Multiplexed pseudo-syscalls (negative) do not count.
fn highest(seccomp: &LinuxSeccomp, arch: ScmpArch) -> Option<u32> {
    seccomp
        .syscalls()
        .iter()
        .flatten()
        .flat_map(|c| c.names())
        .filter_map(|name| ScmpSyscall::from_name_by_arch(name, arch).ok())
        .filter_map(|s| u32::try_from(i32::from(s)).ok())
        .max()
}

/// Where a jump goes.
#[derive(Clone, Copy)]
enum To {
    /// The next instruction.
    Next,
    /// The start of the next architecture's section (or the fall-through to the filter).
    NextSection,
    /// The instruction `n` further on (within a section).
    Skip(u8),
    Enosys,
    Filter,
}

struct Insn {
    code: u16,
    k: u32,
    jt: To,
    jf: To,
}

fn ld(offset: u32) -> Insn {
    Insn {
        code: LD_W_ABS,
        k: offset,
        jt: To::Next,
        jf: To::Next,
    }
}

fn jump(code: u16, k: u32, jt: To, jf: To) -> Insn {
    Insn { code, k, jt, jf }
}

/// The ENOSYS check of syscall numbers above `max` (or none: straight to the filter).
fn above(max: Option<u32>) -> Insn {
    match max {
        Some(max) => jump(JMP_JGT_K, max, To::Enosys, To::Filter),
        None => jump(JMP_JA, 0, To::Filter, To::Filter),
    }
}

/// The prologue for `seccomp`, to be put before libseccomp's program (which starts right after
/// it), or an empty program when none is needed.
pub(super) fn prologue(seccomp: &LinuxSeccomp) -> Result<Vec<libc::sock_filter>, String> {
    if !wanted(seccomp) {
        return Ok(Vec::new());
    }
    let native = ScmpArch::native();
    let mut arches: Vec<ScmpArch> = vec![native];
    for a in seccomp.architectures().iter().flatten() {
        let a = super::seccomp::arch_of(*a);
        let a = if a == ScmpArch::Native { native } else { a };
        if !arches.contains(&a) {
            arches.push(a);
        }
    }
    let mut sections: Vec<Vec<Insn>> = Vec::new();
    let mut done: Vec<u32> = Vec::new();
    for &arch in &arches {
        let Some(token) = audit_arch(arch) else {
            continue;
        };
        if done.contains(&token) {
            continue;
        }
        done.push(token);
        let mut s = vec![
            jump(JMP_JEQ_K, token, To::Next, To::NextSection),
            ld(OFFSET_NR),
        ];
        if matches!(arch, ScmpArch::X8664 | ScmpArch::X32) {
            let x86_64 = arches
                .contains(&ScmpArch::X8664)
                .then(|| highest(seccomp, ScmpArch::X8664))
                .flatten();
            let x32 = arches
                .contains(&ScmpArch::X32)
                .then(|| highest(seccomp, ScmpArch::X32))
                .flatten();
            if x86_64.is_none() && x32.is_none() {
                continue;
            }
            s.push(jump(JMP_JSET_K, X32_SYSCALL_BIT, To::Skip(1), To::Next));
            s.push(above(x86_64));
            s.push(above(x32));
        } else {
            let Some(max) = highest(seccomp, arch) else {
                continue;
            };
            if matches!(arch, ScmpArch::S390 | ScmpArch::S390X) {
                s.push(jump(JMP_JEQ_K, S390_MULTIPLEX, To::Enosys, To::Next));
            }
            s.push(above(Some(max)));
        }
        sections.push(s);
    }
    if sections.is_empty() {
        return Ok(Vec::new());
    }
    assemble(sections)
}

/// Lay the sections out after one load of the architecture, with the fall-through for other
/// architectures, the ENOSYS return and then the filter, and resolve the jumps.
fn assemble(sections: Vec<Vec<Insn>>) -> Result<Vec<libc::sock_filter>, String> {
    let mut insns = vec![ld(OFFSET_ARCH)];
    let mut section_end = Vec::new();
    for s in sections {
        insns.extend(s);
        section_end.push(insns.len());
    }
    // Another architecture: on to the filter.
    insns.push(jump(JMP_JA, 0, To::Filter, To::Filter));
    let enosys = insns.len();
    insns.push(Insn {
        code: RET_K,
        k: SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        jt: To::Next,
        jf: To::Next,
    });
    let filter = insns.len();
    let mut out = Vec::with_capacity(insns.len());
    for (i, insn) in insns.iter().enumerate() {
        let next_section = section_end
            .iter()
            .copied()
            .find(|&e| e > i)
            .unwrap_or(i + 1);
        let target = |to: To| match to {
            To::Next => i + 1,
            To::NextSection => next_section,
            To::Skip(n) => i + 1 + usize::from(n),
            To::Enosys => enosys,
            To::Filter => filter,
        };
        let offset = |to: To| -> Result<usize, String> {
            target(to)
                .checked_sub(i + 1)
                .ok_or_else(|| "seccomp: ENOSYS prologue: a jump goes back".to_string())
        };
        let (jt, jf, k) = if insn.code == JMP_JA {
            (
                0,
                0,
                u32::try_from(offset(insn.jt)?).map_err(|e| e.to_string())?,
            )
        } else if insn.code & 0x07 == 0x05 {
            let short = |to| {
                offset(to).and_then(|o| {
                    u8::try_from(o)
                        .map_err(|_| "seccomp: ENOSYS prologue: a jump is too long".to_string())
                })
            };
            (short(insn.jt)?, short(insn.jf)?, insn.k)
        } else {
            (0, 0, insn.k)
        };
        out.push(libc::sock_filter {
            code: insn.code,
            jt,
            jf,
            k,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run a classic BPF program (the opcodes above only) on a syscall; the return value.
    fn run(prog: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
        let mut pc = 0;
        let mut acc = 0u32;
        loop {
            let i = &prog[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => acc = if i.k == OFFSET_ARCH { arch } else { nr },
                JMP_JA => pc += i.k as usize,
                JMP_JEQ_K => pc += usize::from(if acc == i.k { i.jt } else { i.jf }),
                JMP_JGT_K => pc += usize::from(if acc > i.k { i.jt } else { i.jf }),
                JMP_JSET_K => pc += usize::from(if acc & i.k != 0 { i.jt } else { i.jf }),
                RET_K => return i.k,
                other => panic!("opcode {other:#x}"),
            }
        }
    }

    /// The prologue followed by a "filter" that returns 0xf17e for everything.
    fn program(profile: serde_json::Value) -> Vec<libc::sock_filter> {
        let s: LinuxSeccomp = serde_json::from_value(profile).unwrap();
        let mut p = prologue(&s).unwrap();
        p.push(libc::sock_filter {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: 0xf17e,
        });
        p
    }

    const ENOSYS: u32 = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    const X86_64: u32 = 0xc000_003e;
    const I386: u32 = 0x4000_0003;

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn numbers_above_the_profile_get_enosys() {
        // x86_64: read 0, write 1, mmap 9, getpid 39; i386: getpid 20, mmap 90.
        let p = program(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["read", "getpid", "mmap"], "action": "SCMP_ACT_ALLOW"}]
        }));
        assert_eq!(run(&p, X86_64, 0), 0xf17e);
        assert_eq!(run(&p, X86_64, 39), 0xf17e);
        assert_eq!(run(&p, X86_64, 40), ENOSYS);
        assert_eq!(run(&p, X86_64, 1000), ENOSYS);
        assert_eq!(run(&p, I386, 90), 0xf17e);
        assert_eq!(run(&p, I386, 91), ENOSYS);
        // x32: the x86_64 numbers with bit 30.
        assert_eq!(run(&p, X86_64, X32_SYSCALL_BIT | 39), 0xf17e);
        assert_eq!(run(&p, X86_64, X32_SYSCALL_BIT | 1000), ENOSYS);
        // Another architecture is the filter's business.
        assert_eq!(run(&p, 0xc000_00b7, 1000), 0xf17e);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x32_without_the_arch_goes_to_the_filter() {
        let p = program(serde_json::json!({
            "defaultAction": "SCMP_ACT_KILL",
            "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
        }));
        assert_eq!(run(&p, X86_64, 0), 0xf17e);
        assert_eq!(run(&p, X86_64, 1), ENOSYS);
        assert_eq!(run(&p, X86_64, X32_SYSCALL_BIT | 1000), 0xf17e);
    }

    #[test]
    fn permissive_defaults_and_enosys_errno_need_none() {
        for profile in [
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}]}),
            serde_json::json!({"defaultAction": "SCMP_ACT_LOG",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}]}),
            serde_json::json!({"defaultAction": "SCMP_ACT_TRACE",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO"}]}),
            serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}),
            // Nothing named: nothing to compare with.
            serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO"}),
        ] {
            let s: LinuxSeccomp = serde_json::from_value(profile.clone()).unwrap();
            assert!(prologue(&s).unwrap().is_empty(), "{profile}");
        }
    }
}
