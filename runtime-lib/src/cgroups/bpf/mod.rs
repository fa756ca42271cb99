//! Device access control on cgroup v2: an eBPF program of type `BPF_PROG_TYPE_CGROUP_DEVICE`
//! compiled from `linux.resources.devices` and attached to the container's cgroup.
//!
//! cgroup v2 has no `devices.allow`/`devices.deny`: the kernel runs the programs attached to a
//! cgroup (and to its ancestors) on every open and mknod of a device node by its processes,
//! with a `struct bpf_cgroup_dev_ctx` (linux/bpf.h) that holds the device type, the access
//! asked for and the device numbers; the program returns 1 to allow and 0 to deny.
//!
//! Semantics of the rule list: rules apply in order on top of each other, so for each access
//! bit asked for (read, write, mknod) the last rule that matches the device and names that bit
//! decides it; the request is allowed when every bit it asks for is allowed, and a bit no rule
//! names is denied. Deciding bit by bit is what makes a later `deny c 1:3 w` close writes that
//! an earlier `allow c 1:3 rwm` opened, also for a request of `rw`, and lets `allow ... r` plus
//! `allow ... w` grant `rw`, as the v1 controller does. A request that asks for no access bit
//! at all (`access(2)` with `X_OK`) is decided by the last rule that matches the device.
//!
//! The compiled program walks the rules from the last to the first with the set of bits still
//! undecided: a matching deny rule that names an undecided bit denies, a matching allow rule
//! decides the bits it names and allows once none is left; when the rules run out, deny. A
//! rule that matches every device and every access ends the walk: the rules before it can
//! never decide anything, and are not emitted (the verifier rejects unreachable code).
use std::ffi::CStr;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::CgroupError;
use crate::sys::bpf as sys;

// Opcode parts that eBPF shares with classic BPF (linux/bpf_common.h), as the libc crate
// defines them.
const LDX: u8 = libc::BPF_LDX as u8;
const ALU: u8 = libc::BPF_ALU as u8;
const JMP: u8 = libc::BPF_JMP as u8;
const MEM: u8 = libc::BPF_MEM as u8;
const W: u8 = libc::BPF_W as u8;
const K: u8 = libc::BPF_K as u8;
const X: u8 = libc::BPF_X as u8;
const AND: u8 = libc::BPF_AND as u8;
const RSH: u8 = libc::BPF_RSH as u8;
const JEQ: u8 = libc::BPF_JEQ as u8;
// eBPF-only opcode parts, from linux/bpf.h (not in the libc crate).
/// `BPF_JMP32`: conditional jumps that compare the low 32 bits.
const JMP32: u8 = 0x06;
/// `BPF_MOV`.
const MOV: u8 = 0xb0;
/// `BPF_JNE`.
const JNE: u8 = 0x50;
/// `BPF_EXIT`.
const EXIT: u8 = 0x90;

// `BPF_DEVCG_DEV_*` and `BPF_DEVCG_ACC_*` in linux/bpf.h.
const DEV_BLOCK: u32 = 1;
const DEV_CHAR: u32 = 2;
const ACC_MKNOD: u32 = 1;
const ACC_READ: u32 = 2;
const ACC_WRITE: u32 = 4;
/// A bit of our own, never set by the kernel: stands for "no access bit asked for", so that
/// such requests go through the same walk. Every rule names it.
const ACC_NONE_ASKED: u32 = 8;
/// Every bit a rule can decide.
const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE | ACC_NONE_ASKED;

// Registers. R1 holds the context pointer on entry; R0 the verdict at exit.
const R0: u8 = 0;
const R1: u8 = 1;
/// Device type (`BPF_DEVCG_DEV_*`).
const R2: u8 = 2;
/// Access bits not decided yet.
const R3: u8 = 3;
/// Major number.
const R4: u8 = 4;
/// Minor number.
const R5: u8 = 5;

/// Offsets in `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`.
const CTX_ACCESS_TYPE: i16 = 0;
const CTX_MAJOR: i16 = 4;
const CTX_MINOR: i16 = 8;

/// The license the program is loaded under; it calls no helper, so none that needs the GPL.
const LICENSE: &CStr = c"Apache-2.0";
/// The name tools list the program as.
const PROG_NAME: &str = "casulo_devices";
/// Size of the buffer for the verifier's report when the kernel rejects a program.
const VERIFIER_LOG_SIZE: usize = 256 * 1024;
/// The verifier's report is cut to its last this many bytes in error messages.
const VERIFIER_LOG_SHOWN: usize = 4096;

/// One eBPF instruction, as `struct bpf_insn` (linux/bpf.h): opcode, destination and source
/// registers (4 bits each, packed in one byte), jump offset, immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Insn {
    pub(crate) code: u8,
    /// `dst_reg:4, src_reg:4` as the C bitfields lay them out on this target.
    regs: u8,
    pub(crate) off: i16,
    pub(crate) imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        // C allocates bitfields from the low bits on little-endian targets and from the high
        // bits on big-endian ones; dst_reg is declared first.
        let regs = if cfg!(target_endian = "little") {
            (dst & 0xf) | (src << 4)
        } else {
            (dst << 4) | (src & 0xf)
        };
        Insn {
            code,
            regs,
            off,
            imm,
        }
    }

    #[cfg(test)]
    pub(crate) fn dst(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs & 0xf
        } else {
            self.regs >> 4
        }
    }

    #[cfg(test)]
    pub(crate) fn src(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs >> 4
        } else {
            self.regs & 0xf
        }
    }

    /// The 8 bytes of the instruction in the kernel's layout.
    pub(crate) fn to_bytes(self) -> [u8; 8] {
        let off = self.off.to_ne_bytes();
        let imm = self.imm.to_ne_bytes();
        [
            self.code, self.regs, off[0], off[1], imm[0], imm[1], imm[2], imm[3],
        ]
    }
}

/// `dst = *(u32 *)(src + off)`
fn load_word(dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(LDX | MEM | W, dst, src, off, 0)
}

/// `dst = (u32) src`
fn mov32_reg(dst: u8, src: u8) -> Insn {
    Insn::new(ALU | MOV | X, dst, src, 0, 0)
}

/// 32-bit `dst = dst OP imm` (or `dst = imm` for `MOV`).
fn alu32_imm(op: u8, dst: u8, imm: u32) -> Insn {
    Insn::new(ALU | op | K, dst, 0, 0, imm as i32)
}

/// `if ((u32) dst OP imm) goto pc + 1 + off`; the offset is set by [`Block::finish`].
fn jmp32_imm(op: u8, dst: u8, imm: u32) -> Insn {
    Insn::new(JMP32 | op | K, dst, 0, 0, imm as i32)
}

fn exit() -> Insn {
    Insn::new(JMP | EXIT, 0, 0, 0, 0)
}

/// `return verdict`
fn ret(verdict: bool) -> [Insn; 2] {
    [alu32_imm(MOV, R0, u32::from(verdict)), exit()]
}

/// A rule, checked and in the program's terms.
#[derive(Debug)]
struct Rule {
    allow: bool,
    /// `BPF_DEVCG_DEV_*`, None for every type.
    typ: Option<u32>,
    major: Option<u32>,
    minor: Option<u32>,
    /// `BPF_DEVCG_ACC_*` bits, plus [`ACC_NONE_ASKED`].
    access: u32,
}

/// Check rule `index` and convert it; the error says what is wrong with it.
fn parse_rule(index: usize, r: &LinuxDeviceCgroup) -> Result<Rule, String> {
    let what = || {
        let num = |v: Option<i64>| v.map_or("*".to_string(), |n| n.to_string());
        format!(
            "rule {index} ({} {} {}:{} {})",
            if r.allow() { "allow" } else { "deny" },
            r.typ()
                .map_or_else(|| "a".to_string(), |t| t.as_str().to_string()),
            num(r.major()),
            num(r.minor()),
            r.access().as_deref().unwrap_or(""),
        )
    };
    let typ = match r.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => None,
        LinuxDeviceType::B => Some(DEV_BLOCK),
        LinuxDeviceType::C | LinuxDeviceType::U => Some(DEV_CHAR),
        LinuxDeviceType::P => {
            return Err(format!(
                "{}: device rules cannot name FIFOs (type \"p\")",
                what()
            ))
        }
    };
    let number = |v: Option<i64>, name: &str| match v {
        None | Some(-1) => Ok(None),
        Some(n) => u32::try_from(n).map(Some).map_err(|_| {
            format!(
                "{}: {name} {n} is not a device number (0 to {}, or -1 for any)",
                what(),
                u32::MAX
            )
        }),
    };
    let major = number(r.major(), "major")?;
    let minor = number(r.minor(), "minor")?;
    let letters = r.access().as_deref().filter(|a| !a.is_empty());
    let mut access = ACC_NONE_ASKED;
    for c in letters.unwrap_or("rwm").chars() {
        access |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => {
                return Err(format!(
                    "{}: access may only contain r, w and m, found {c:?}",
                    what()
                ))
            }
        };
    }
    Ok(Rule {
        allow: r.allow(),
        typ,
        major,
        minor,
        access,
    })
}

/// The instructions of one rule, whose conditional jumps all go to the end of the block.
struct Block {
    insns: Vec<Insn>,
    /// Indices in `insns` of the jumps to patch.
    skips: Vec<usize>,
}

impl Block {
    fn skip_unless(&mut self, jump: Insn) {
        self.skips.push(self.insns.len());
        self.insns.push(jump);
    }

    fn finish(mut self, out: &mut Vec<Insn>) -> Result<(), String> {
        let len = self.insns.len();
        for i in self.skips {
            self.insns[i].off = i16::try_from(len - i - 1)
                .map_err(|_| "a rule compiled to too long a block".to_string())?;
        }
        out.extend(self.insns);
        Ok(())
    }
}

fn compile(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>, String> {
    let parsed = rules
        .iter()
        .enumerate()
        .map(|(i, r)| parse_rule(i, r))
        .collect::<Result<Vec<_>, _>>()?;
    let mut prog = vec![
        load_word(R2, R1, CTX_ACCESS_TYPE),
        load_word(R4, R1, CTX_MAJOR),
        load_word(R5, R1, CTX_MINOR),
        // R3 = access bits asked for (upper half), R2 = device type (lower half).
        mov32_reg(R3, R2),
        alu32_imm(RSH, R3, 16),
        alu32_imm(AND, R2, 0xffff),
        // No bit asked for: decide the pseudo-bit that every rule names.
        Insn {
            off: 1,
            ..jmp32_imm(JNE, R3, 0)
        },
        alu32_imm(MOV, R3, ACC_NONE_ASKED),
    ];
    for rule in parsed.iter().rev() {
        let mut block = Block {
            insns: Vec::new(),
            skips: Vec::new(),
        };
        if let Some(t) = rule.typ {
            block.skip_unless(jmp32_imm(JNE, R2, t));
        }
        if let Some(m) = rule.major {
            block.skip_unless(jmp32_imm(JNE, R4, m));
        }
        if let Some(m) = rule.minor {
            block.skip_unless(jmp32_imm(JNE, R5, m));
        }
        let all_access = rule.access == ACC_ALL;
        if rule.allow {
            if !all_access {
                // Decide the bits it names; more left undecided: go on with earlier rules.
                block.insns.push(alu32_imm(AND, R3, !rule.access));
                block.skip_unless(jmp32_imm(JNE, R3, 0));
            }
        } else if !all_access {
            // It decides nothing unless it names an undecided bit.
            block.insns.push(mov32_reg(R1, R3));
            block.insns.push(alu32_imm(AND, R1, rule.access));
            block.skip_unless(jmp32_imm(JEQ, R1, 0));
        }
        block.insns.extend(ret(rule.allow));
        let unconditional = block.skips.is_empty();
        block.finish(&mut prog)?;
        if unconditional {
            return Ok(prog);
        }
    }
    prog.extend(ret(false));
    Ok(prog)
}

/// Compile device rules (in the order of `linux.resources.devices`, defaults appended) into
/// a `BPF_PROG_TYPE_CGROUP_DEVICE` program. A malformed rule (bad type, device number or
/// access letter) is a [`CgroupError::Resource`] naming it.
#[cfg(test)]
pub(crate) fn device_program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>, CgroupError> {
    compile(rules).map_err(|msg| CgroupError::Resource {
        resource: "devices".to_string(),
        path: "linux.resources.devices".to_string(),
        msg,
    })
}

/// Load the program for `rules` and make it the only device program attached to the cgroup
/// v2 directory `cgroup_dir`.
///
/// The new program is attached before the ones already there are detached, so that the
/// cgroup is never without a filter (this is how `update` replaces the rules of a running
/// container). If what is attached was attached without `BPF_F_ALLOW_MULTI` (by another
/// program), the new one replaces it in place, which the kernel does atomically.
pub(crate) fn apply_device_program(
    cgroup_dir: &Path,
    rules: &[LinuxDeviceCgroup],
) -> Result<(), CgroupError> {
    let resource_err = |msg: String| CgroupError::Resource {
        resource: "devices".to_string(),
        path: cgroup_dir.display().to_string(),
        msg,
    };
    let io_err = |step: &'static str| {
        move |source: std::io::Error| CgroupError::Io {
            step,
            path: cgroup_dir.to_path_buf(),
            source,
        }
    };
    let code: Vec<[u8; 8]> = compile(rules)
        .map_err(resource_err)?
        .into_iter()
        .map(Insn::to_bytes)
        .collect();
    let prog = load(&code).map_err(resource_err)?;
    let dir = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(cgroup_dir)
        .map_err(io_err("open"))?;
    let (flags, old) = sys::prog_query(dir.as_fd(), sys::ATTACH_CGROUP_DEVICE)
        .map_err(io_err("query the device programs attached to"))?;
    if !old.is_empty() && flags & sys::F_ALLOW_MULTI == 0 {
        sys::prog_attach(dir.as_fd(), prog.as_fd(), sys::ATTACH_CGROUP_DEVICE, flags)
            .map_err(io_err("replace the device program attached to"))?;
        return Ok(());
    }
    sys::prog_attach(
        dir.as_fd(),
        prog.as_fd(),
        sys::ATTACH_CGROUP_DEVICE,
        sys::F_ALLOW_MULTI,
    )
    .map_err(io_err("attach the device program to"))?;
    for id in old {
        let gone = |e: &std::io::Error| e.raw_os_error() == Some(libc::ENOENT);
        // A program detached meanwhile (a concurrent update) is gone already: fine.
        let old_prog = match sys::prog_get_fd_by_id(id) {
            Ok(fd) => fd,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(io_err("open a device program attached to")(e)),
        };
        match sys::prog_detach(dir.as_fd(), old_prog.as_fd(), sys::ATTACH_CGROUP_DEVICE) {
            Ok(()) => {}
            Err(e) if gone(&e) => {}
            Err(e) => return Err(io_err("detach the previous device program from")(e)),
        }
    }
    Ok(())
}

/// Load a device program; when the kernel rejects it, load it again with a log buffer and
/// return the verifier's report with the errno.
fn load(code: &[[u8; 8]]) -> Result<OwnedFd, String> {
    let first = match sys::prog_load(sys::PROG_TYPE_CGROUP_DEVICE, code, LICENSE, PROG_NAME, None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    let mut log = vec![0u8; VERIFIER_LOG_SIZE];
    let second = sys::prog_load(
        sys::PROG_TYPE_CGROUP_DEVICE,
        code,
        LICENSE,
        PROG_NAME,
        Some(&mut log),
    );
    if let Ok(fd) = second {
        return Ok(fd);
    }
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]);
    let text = text.trim();
    let mut msg = format!(
        "the kernel refused the device program ({} instructions): {first}",
        code.len()
    );
    if first.raw_os_error() == Some(libc::EPERM) {
        msg.push_str(" (loading it needs CAP_SYS_ADMIN, or CAP_BPF)");
    }
    if !text.is_empty() {
        let cut = text.len().saturating_sub(VERIFIER_LOG_SHOWN);
        let cut = (cut..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        msg.push_str("; verifier log");
        if cut > 0 {
            msg.push_str(" (end)");
        }
        msg.push_str(": ");
        msg.push_str(&text[cut..]);
    }
    Err(msg)
}

#[cfg(test)]
mod tests;
