//! Seccomp: the OCI profile compiled to a BPF program before the clone, installed in the
//! child with one seccomp(2) call.

use std::io::{Read, Seek, SeekFrom};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::sys::memfd::{memfd_create, MFdFlags};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};

use super::SecurityError;

/// Syscalls take at most six arguments.
const MAX_ARGS: usize = 6;

/// A seccomp filter compiled to BPF before the clone.
///
/// A default plan holds no program: [`SeccompPlan::load`] then has nothing to install and
/// returns at once. [`SeccompPlan::from_spec`] always yields a program.
#[derive(Clone, Default)]
pub struct SeccompPlan {
    program: Vec<libc::sock_filter>,
    /// SECCOMP_FILTER_FLAG_* for seccomp(2).
    flags: libc::c_uint,
}

impl std::fmt::Debug for SeccompPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeccompPlan")
            .field("instructions", &self.program.len())
            .field("flags", &format_args!("{:#x}", self.flags))
            .finish()
    }
}

impl SeccompPlan {
    /// Compile `linux.seccomp` with libseccomp.
    ///
    /// Like runc: a syscall name libseccomp does not know is skipped (names are resolved per
    /// architecture, and profiles list syscalls of every architecture); a rule whose action
    /// equals the default action is skipped (libseccomp refuses those); arguments whose
    /// indexes are all distinct form one rule (all must match), while several conditions on
    /// the same index become one rule each (any may match). ERRNO and TRACE return
    /// `errnoRet` (default EPERM); `errnoRet` is ignored for other actions.
    ///
    /// Rejected: SCMP_ACT_NOTIFY and SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (no seccomp
    /// agent support yet), an architecture libseccomp cannot add, an argument index past 5,
    /// an errno that does not fit the 16 bits of a seccomp return value.
    /// SECCOMP_FILTER_FLAG_TSYNC is accepted and not used: the process loading the filter
    /// has a single thread.
    pub fn from_spec(seccomp: &LinuxSeccomp) -> Result<Self, SecurityError> {
        let default = action_of(
            "linux.seccomp.defaultAction",
            seccomp.default_action(),
            seccomp.default_errno_ret(),
        )?;
        let mut flags: libc::c_uint = 0;
        for flag in seccomp.flags().iter().flatten() {
            flags |= match flag {
                LinuxSeccompFilterFlag::SeccompFilterFlagLog => {
                    libc::SECCOMP_FILTER_FLAG_LOG as libc::c_uint
                }
                LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                    libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as libc::c_uint
                }
                LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 0,
                LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                    return Err(SecurityError::Unsupported {
                        what: "linux.seccomp.flags".into(),
                        msg: "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV only applies to \
                              SCMP_ACT_NOTIFY, which is not supported yet"
                            .into(),
                    })
                }
            };
        }

        let mut ctx = ScmpFilterContext::new(default).map_err(scmp("create filter"))?;
        for arch in seccomp.architectures().iter().flatten() {
            ctx.add_arch(arch_of(*arch))
                .map_err(scmp(&format!("add architecture {arch:?}")))?;
        }

        for (i, call) in seccomp.syscalls().iter().flatten().enumerate() {
            let what = format!("linux.seccomp.syscalls[{i}]");
            let action = action_of(&format!("{what}.action"), call.action(), call.errno_ret())?;
            if action == default {
                continue;
            }
            let rules = conditions_of(&what, call.args().as_deref().unwrap_or(&[]))?;
            for name in call.names() {
                let Ok(syscall) = ScmpSyscall::from_name(name) else {
                    // Unknown to libseccomp: skipped, as runc does.
                    continue;
                };
                for conditions in &rules {
                    ctx.add_rule_conditional(action, syscall, conditions)
                        .map_err(scmp(&format!("add rule for {name} ({what})")))?;
                }
            }
        }

        Ok(SeccompPlan {
            program: export(&ctx)?,
            flags,
        })
    }

    /// Number of BPF instructions (0 for a default plan).
    pub fn instructions(&self) -> usize {
        self.program.len()
    }

    /// The SECCOMP_FILTER_FLAG_* bits passed to seccomp(2).
    pub fn flags(&self) -> libc::c_uint {
        self.flags
    }

    /// Install the program on the calling thread: seccomp(SECCOMP_SET_MODE_FILTER, flags,
    /// program). The kernel accepts it only with no_new_privs set or CAP_SYS_ADMIN in the
    /// effective set (EACCES otherwise). Allocation-free; a default plan installs nothing.
    pub fn load(&self) -> Result<(), SecurityError> {
        if self.program.is_empty() {
            return Ok(());
        }
        let fail = |errno| SecurityError::Apply {
            step: "install seccomp filter (seccomp SECCOMP_SET_MODE_FILTER)",
            errno,
        };
        let len =
            libc::c_ushort::try_from(self.program.len()).map_err(|_| fail(nix::Error::E2BIG))?;
        crate::sys::security::seccomp_set_filter(&self.program, len, self.flags).map_err(fail)
    }
}

fn scmp(step: &str) -> impl FnOnce(libseccomp::error::SeccompError) -> SecurityError + '_ {
    move |source| SecurityError::Seccomp {
        step: step.to_owned(),
        source,
    }
}

fn errno_of(what: &str, errno_ret: Option<u32>) -> Result<u16, SecurityError> {
    match errno_ret {
        None => Ok(libc::EPERM as u16),
        Some(n) => u16::try_from(n).map_err(|_| SecurityError::Invalid {
            what: what.into(),
            msg: format!("errnoRet {n} does not fit a seccomp return value (at most 65535)"),
        }),
    }
}

/// The actions a filter may use (all of the spec's but SCMP_ACT_NOTIFY); `features` reports
/// this list, and a test checks it against [`SeccompPlan::from_spec`].
pub const ACTIONS: [&str; 8] = [
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
];

/// The argument comparison operators.
pub const OPERATORS: [&str; 7] = [
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

/// The filter flags the spec knows, and those applied.
pub const KNOWN_FLAGS: [&str; 4] = [
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];
pub const SUPPORTED_FLAGS: [&str; 3] = [
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
];

/// The architectures a filter may name.
pub const ARCHES: [&str; 24] = [
    "SCMP_ARCH_NATIVE",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
];

fn action_of(
    what: &str,
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
) -> Result<ScmpAction, SecurityError> {
    Ok(match action {
        // SCMP_ACT_KILL is libseccomp's old name for SCMP_ACT_KILL_THREAD.
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno_of(what, errno_ret)?.into()),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(errno_of(what, errno_ret)?),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SecurityError::Unsupported {
                what: what.into(),
                msg: "SCMP_ACT_NOTIFY (a seccomp agent at listenerPath) is not supported yet"
                    .into(),
            })
        }
    })
}

fn arch_of(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

fn compare_of(what: &str, arg: &LinuxSeccompArg) -> Result<ScmpArgCompare, SecurityError> {
    if arg.index() >= MAX_ARGS {
        return Err(SecurityError::Invalid {
            what: what.into(),
            msg: format!(
                "argument index {} out of range (syscalls have {MAX_ARGS} arguments, 0-5)",
                arg.index()
            ),
        });
    }
    let index = arg.index() as u32;
    let (op, datum) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        // (arg & value) == valueTwo
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    Ok(ScmpArgCompare::new(index, op, datum))
}

/// The rules for one syscall entry, each a list of conditions that must all match.
fn conditions_of(
    what: &str,
    args: &[LinuxSeccompArg],
) -> Result<Vec<Vec<ScmpArgCompare>>, SecurityError> {
    let compares = args
        .iter()
        .enumerate()
        .map(|(j, arg)| compare_of(&format!("{what}.args[{j}]"), arg))
        .collect::<Result<Vec<_>, _>>()?;
    let mut per_index = [0usize; MAX_ARGS];
    for arg in args {
        per_index[arg.index()] += 1;
    }
    if per_index.iter().any(|n| *n > 1) {
        Ok(compares.into_iter().map(|c| vec![c]).collect())
    } else {
        Ok(vec![compares])
    }
}

/// Export the filter's BPF program (through a memfd, as libseccomp writes to an fd).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, SecurityError> {
    let fd = memfd_create(c"seccomp-bpf", MFdFlags::MFD_CLOEXEC).map_err(|source| {
        SecurityError::Sys {
            step: "seccomp: create memfd for the BPF program".into(),
            source,
        }
    })?;
    ctx.export_bpf(&fd).map_err(scmp("export BPF"))?;
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .map_err(|e| SecurityError::Sys {
            step: "seccomp: read back the BPF program".into(),
            source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })?;
    const INSN: usize = std::mem::size_of::<libc::sock_filter>();
    if bytes.is_empty() || bytes.len() % INSN != 0 {
        return Err(SecurityError::Invalid {
            what: "seccomp: exported BPF program".into(),
            msg: format!(
                "{} bytes, not a whole number of {INSN}-byte instructions",
                bytes.len()
            ),
        });
    }
    Ok(bytes
        .chunks_exact(INSN)
        .map(|b| libc::sock_filter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).expect("test profile parses")
    }

    fn plan(json: &str) -> Result<SeccompPlan, SecurityError> {
        SeccompPlan::from_spec(&parse(json))
    }

    #[test]
    fn compiles_every_supported_action() {
        for action in [
            "SCMP_ACT_KILL",
            "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_KILL_THREAD",
            "SCMP_ACT_TRAP",
            "SCMP_ACT_ERRNO",
            "SCMP_ACT_TRACE",
            "SCMP_ACT_LOG",
        ] {
            let p = plan(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ALLOW",
                    "syscalls":[{{"names":["getcwd"],"action":"{action}","errnoRet":95}}]}}"#
            ))
            .unwrap_or_else(|e| panic!("{action}: {e}"));
            assert!(p.instructions() > 0, "{action}");
        }
    }

    #[test]
    fn rule_action_shapes_the_program() {
        // Different actions give different return values, hence different programs.
        let errno = plan(
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_ERRNO","errnoRet":95}]}"#,
        )
        .unwrap();
        let ret = |p: &SeccompPlan| {
            p.program
                .iter()
                .filter(|i| i.code == (libc::BPF_RET | libc::BPF_K) as u16)
                .map(|i| i.k)
                .collect::<Vec<_>>()
        };
        assert!(ret(&errno).contains(&(libc::SECCOMP_RET_ERRNO | 95)));
        let trace = plan(
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_TRACE"}]}"#,
        )
        .unwrap();
        assert!(ret(&trace).contains(&(libc::SECCOMP_RET_TRACE | libc::EPERM as u32)));
    }

    #[test]
    fn default_errno_ret_applies_to_default_action() {
        let p = plan(r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":6}"#).unwrap();
        assert!(p
            .program
            .iter()
            .any(|i| i.k == libc::SECCOMP_RET_ERRNO | libc::ENXIO as u32));
    }

    #[test]
    fn notify_is_rejected_as_unsupported() {
        let err = plan(
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        )
        .unwrap_err();
        assert!(matches!(err, SecurityError::Unsupported { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("SCMP_ACT_NOTIFY") && msg.contains("syscalls[0]"),
            "{msg}"
        );
        let err = plan(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#).unwrap_err();
        assert!(err.to_string().contains("defaultAction"), "{err}");
    }

    #[test]
    fn flags_are_translated() {
        let p = plan(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG",
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW","SECCOMP_FILTER_FLAG_TSYNC"]}"#,
        )
        .unwrap();
        assert_eq!(
            p.flags() as libc::c_ulong,
            libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
        );
        let err = plan(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#,
        )
        .unwrap_err();
        assert!(matches!(err, SecurityError::Unsupported { .. }), "{err}");
    }

    #[test]
    fn unknown_syscall_names_are_skipped() {
        let with = plan(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["getcwd","no_such_syscall_xyz"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        let without = plan(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["getcwd"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        assert_eq!(with.instructions(), without.instructions());
    }

    #[test]
    fn rule_equal_to_default_is_skipped() {
        let p = plan(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["getcwd"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        let bare = plan(r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#).unwrap();
        assert_eq!(p.instructions(), bare.instructions());
        // Same action with another errno is a different action: kept.
        let other = plan(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["getcwd"],"action":"SCMP_ACT_ERRNO","errnoRet":95}]}"#,
        )
        .unwrap();
        assert!(other.instructions() > bare.instructions());
    }

    #[test]
    fn all_operators_compile() {
        for op in [
            "SCMP_CMP_NE",
            "SCMP_CMP_LT",
            "SCMP_CMP_LE",
            "SCMP_CMP_EQ",
            "SCMP_CMP_GE",
            "SCMP_CMP_GT",
            "SCMP_CMP_MASKED_EQ",
        ] {
            plan(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["personality"],
                    "action":"SCMP_ACT_ERRNO",
                    "args":[{{"index":0,"op":"{op}","value":255,"valueTwo":8}}]}}]}}"#
            ))
            .unwrap_or_else(|e| panic!("{op}: {e}"));
        }
    }

    #[test]
    fn same_index_conditions_become_separate_rules() {
        let args = |json: &str| -> Vec<LinuxSeccompArg> { serde_json::from_str(json).unwrap() };
        let distinct = conditions_of(
            "t",
            &args(
                r#"[{"index":0,"op":"SCMP_CMP_EQ","value":1},
                    {"index":1,"op":"SCMP_CMP_EQ","value":2}]"#,
            ),
        )
        .unwrap();
        assert_eq!(distinct.len(), 1);
        assert_eq!(distinct[0].len(), 2);
        let same = conditions_of(
            "t",
            &args(
                r#"[{"index":0,"op":"SCMP_CMP_EQ","value":1},
                    {"index":0,"op":"SCMP_CMP_EQ","value":2}]"#,
            ),
        )
        .unwrap();
        assert_eq!(same.len(), 2);
        assert!(same.iter().all(|rule| rule.len() == 1));
        assert_eq!(conditions_of("t", &[]).unwrap(), vec![Vec::new()]);
    }

    #[test]
    fn bad_argument_index_and_errno_are_rejected() {
        let err = plan(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["personality"],
                "action":"SCMP_ACT_ERRNO","args":[{"index":6,"op":"SCMP_CMP_EQ","value":1}]}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("syscalls[0].args[0]") && err.contains("index 6"),
            "{err}"
        );
        let err = plan(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getcwd"],
                "action":"SCMP_ACT_ERRNO","errnoRet":70000}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("errnoRet 70000"), "{err}");
    }

    #[test]
    fn unknown_names_are_refused_when_parsing() {
        for json in [
            r#"{"defaultAction":"SCMP_ACT_BOGUS"}"#,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_BOGUS"]}"#,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_BOGUS"]}"#,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["getcwd"],
                "action":"SCMP_ACT_ERRNO","args":[{"index":0,"op":"SCMP_CMP_BOGUS","value":1}]}]}"#,
        ] {
            assert!(
                serde_json::from_str::<LinuxSeccomp>(json).is_err(),
                "{json}"
            );
        }
    }

    #[test]
    fn architectures_are_added() {
        let native = plan(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["getcwd"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        let multi = plan(
            r#"{"defaultAction":"SCMP_ACT_ALLOW",
                "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                "syscalls":[{"names":["getcwd"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        assert!(multi.instructions() > native.instructions());
    }

    #[test]
    fn default_plan_loads_nothing() {
        let p = SeccompPlan::default();
        assert_eq!(p.instructions(), 0);
        // No syscall is made for an empty plan, so this is safe in the test process.
        p.load().unwrap();
    }

    #[test]
    fn feature_tables_match_the_compiler() {
        for action in ACTIONS {
            plan(&format!(r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["getcwd"],"action":"{action}"}}]}}"#))
                .unwrap_or_else(|e| panic!("{action}: {e}"));
        }
        for op in OPERATORS {
            plan(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{{"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[{{"index":0,"value":1,"valueTwo":1,"op":"{op}"}}]}}]}}"#
            ))
            .unwrap_or_else(|e| panic!("{op}: {e}"));
        }
        for arch in ARCHES {
            // Known to the compiler; libseccomp adds only ABIs compatible with this machine's
            // (a big-endian one beside x86_64 is refused by libseccomp itself).
            if let Err(e) = plan(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ALLOW","architectures":["{arch}"]}}"#
            )) {
                assert!(e.to_string().contains("add architecture"), "{arch}: {e}");
            }
        }
        for flag in KNOWN_FLAGS {
            let r = plan(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ALLOW","flags":["{flag}"]}}"#
            ));
            assert_eq!(r.is_ok(), SUPPORTED_FLAGS.contains(&flag), "{flag}");
        }
    }
}
