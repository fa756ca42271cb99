//! Seccomp: the OCI profile compiled to a BPF program before the fork, installed in the
//! child with one seccomp(2) call.
//!
//! A profile with SCMP_ACT_NOTIFY rules is loaded with SECCOMP_FILTER_FLAG_NEW_LISTENER: the
//! kernel then returns a listener fd, which goes to the seccomp agent at
//! `linux.seccomp.listenerPath` (see [`super::seccomp_notify`]).

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::sys::memfd::{memfd_create, MFdFlags};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator,
};

use super::seccomp_cache::SeccompCache;
use super::SecurityError;

/// Syscalls take at most six arguments.
const MAX_ARGS: usize = 6;

/// A seccomp filter compiled to BPF before the fork.
///
/// A default plan holds no program: [`SeccompPlan::load`] then has nothing to install and
/// returns at once. [`SeccompPlan::from_spec`] always yields a program.
#[derive(Clone, Default)]
pub struct SeccompPlan {
    program: Vec<libc::sock_filter>,
    /// SECCOMP_FILTER_FLAG_* for seccomp(2).
    flags: libc::c_uint,
    /// The seccomp agent, when a rule notifies one.
    listener: Option<Listener>,
}

/// Where the listener fd of a filter with SCMP_ACT_NOTIFY rules goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// `linux.seccomp.listenerPath`: the agent's unix stream socket. A leading `@` names an
    /// abstract socket; a relative path is relative to the runtime's working directory (the
    /// bundle, for the command line's create and run), as for the reference runtime.
    pub path: PathBuf,
    /// `linux.seccomp.listenerMetadata`, passed to the agent as is.
    pub metadata: Option<String>,
}

impl std::fmt::Debug for SeccompPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeccompPlan")
            .field("instructions", &self.program.len())
            .field("flags", &format_args!("{:#x}", self.flags))
            .field("listener", &self.listener)
            .finish()
    }
}

/// Syscalls that may not notify an agent, and why.
const NOT_NOTIFIABLE: [(&str, &str); 2] = [
    // The reference runtime refuses it (its init reports the listener with a write): a
    // profile gets the same answer from both runtimes.
    (
        "write",
        "the reference runtime refuses it, as its init passes the listener on with a write",
    ),
    (
        "sendmsg",
        "the listener travels to the seccomp agent with a sendmsg made under the filter, which \
         would wait forever for the agent that has not received it yet",
    ),
];

/// The kernel accepts SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV since Linux 5.19.
const WAIT_KILLABLE_RECV: libc::c_uint =
    libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as libc::c_uint;
const NEW_LISTENER: libc::c_uint = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as libc::c_uint;

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
    /// SCMP_ACT_NOTIFY needs `listenerPath` (a `listenerPath` without any SCMP_ACT_NOTIFY
    /// rule is ignored, as the spec says); it may not be the default action nor apply to the
    /// syscalls `write` (as the reference runtime) and `sendmsg` (the listener goes to the
    /// agent with one). `listenerMetadata` without `listenerPath` is refused
    /// (the spec forbids it). SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV only goes with
    /// SCMP_ACT_NOTIFY (the kernel refuses it without a listener) and needs Linux 5.19.
    ///
    /// Also rejected: an architecture libseccomp cannot add, an argument index past 5, an
    /// errno that does not fit the 16 bits of a seccomp return value.
    /// SECCOMP_FILTER_FLAG_TSYNC is accepted and not used: the process loading the filter
    /// has a single thread. Without `flags`, SECCOMP_FILTER_FLAG_SPEC_ALLOW is used where the
    /// kernel has it. A profile that denies by default answers syscalls newer than those it
    /// names with ENOSYS (see the crate-private `seccomp_enosys` module).
    pub fn from_spec(seccomp: &LinuxSeccomp) -> Result<Self, SecurityError> {
        Self::from_spec_cached(seccomp, None)
    }

    /// [`Self::from_spec`], with the compiled program taken from `cache` where an entry for
    /// this profile is there, and stored there otherwise (see `seccomp_cache`).
    pub fn from_spec_cached(
        seccomp: &LinuxSeccomp,
        cache: Option<&SeccompCache>,
    ) -> Result<Self, SecurityError> {
        if seccomp.default_action() == LinuxSeccompAction::ScmpActNotify {
            return Err(SecurityError::Invalid {
                what: "linux.seccomp.defaultAction".into(),
                msg: "SCMP_ACT_NOTIFY cannot be the default action: the runtime's own \
                      syscalls after loading the filter would wait for a seccomp agent that \
                      does not have the listener yet"
                    .into(),
            });
        }
        let default = action_of(
            "linux.seccomp.defaultAction",
            seccomp.default_action(),
            seccomp.default_errno_ret(),
        )?;
        let mut notifies = false;
        for (i, call) in seccomp.syscalls().iter().flatten().enumerate() {
            if call.action() != LinuxSeccompAction::ScmpActNotify {
                continue;
            }
            notifies = true;
            for name in call.names() {
                if let Some((_, why)) = NOT_NOTIFIABLE.iter().find(|(n, _)| n == name) {
                    return Err(SecurityError::Invalid {
                        what: format!("linux.seccomp.syscalls[{i}]"),
                        msg: format!(
                            "SCMP_ACT_NOTIFY cannot be used for the {name} syscall: {why}"
                        ),
                    });
                }
            }
        }
        let listener_path = seccomp
            .listener_path()
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty());
        let metadata = seccomp
            .listener_metadata()
            .clone()
            .filter(|m| !m.is_empty());
        if listener_path.is_none() && metadata.is_some() {
            return Err(SecurityError::Invalid {
                what: "linux.seccomp.listenerMetadata".into(),
                msg: "set without linux.seccomp.listenerPath".into(),
            });
        }
        let listener = match (notifies, listener_path) {
            (false, _) => None,
            (true, Some(path)) => Some(Listener {
                path: path.clone(),
                metadata,
            }),
            (true, None) => {
                return Err(SecurityError::Invalid {
                    what: "linux.seccomp.listenerPath".into(),
                    msg: "required by SCMP_ACT_NOTIFY: the path of the seccomp agent's unix \
                          socket"
                        .into(),
                })
            }
        };

        let mut flags: libc::c_uint = if notifies { NEW_LISTENER } else { 0 };
        // No `flags` at all (not even an empty list): SECCOMP_FILTER_FLAG_SPEC_ALLOW where the
        // kernel has it, as the reference runtime does. The speculative store bypass
        // mitigation then stays as the host has it: kernels in the "seccomp" mode for it (the
        // default before Linux 5.16) otherwise force it on for every task with a filter, at a
        // cost in performance the profile did not ask for. An empty list asks for no flag.
        if seccomp.flags().is_none() && flag_supported("SECCOMP_FILTER_FLAG_SPEC_ALLOW") {
            flags |= libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as libc::c_uint;
        }
        for flag in seccomp.flags().iter().flatten() {
            flags |= match flag {
                LinuxSeccompFilterFlag::SeccompFilterFlagLog => {
                    libc::SECCOMP_FILTER_FLAG_LOG as libc::c_uint
                }
                LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                    libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as libc::c_uint
                }
                LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 0,
                LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv if !notifies => {
                    return Err(SecurityError::Invalid {
                        what: "linux.seccomp.flags".into(),
                        msg: "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs a rule with \
                              SCMP_ACT_NOTIFY (it changes how notified syscalls wait)"
                            .into(),
                    })
                }
                LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                    if !flag_supported("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV") {
                        return Err(SecurityError::Unsupported {
                            what: "linux.seccomp.flags".into(),
                            msg:
                                "this kernel does not know SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV \
                                  (Linux 5.19 or later has it)"
                                    .into(),
                        });
                    }
                    WAIT_KILLABLE_RECV
                }
            };
        }

        let program = match cache {
            None => compile(seccomp, default)?,
            Some(cache) => {
                let key = SeccompCache::key(seccomp);
                match cache.get(&key) {
                    Some(program) => program,
                    None => {
                        let program = compile(seccomp, default)?;
                        cache.put(&key, &program);
                        program
                    }
                }
            }
        };
        // The reference runtime's test suite reads the flags from this line.
        tracing::debug!("seccomp filter flags: {flags}");
        Ok(SeccompPlan {
            program,
            flags,
            listener,
        })
    }

    /// The seccomp agent that gets the listener, for a filter with SCMP_ACT_NOTIFY rules.
    pub fn listener(&self) -> Option<&Listener> {
        self.listener.as_ref()
    }

    /// Whether the filter is loaded last, right before execve: under no_new_privs, unless it
    /// notifies an agent. That agent must get its listener while the container is being
    /// created (an error sending it fails create, and the agent answers the notified syscalls
    /// of the rest of the setup), so such a filter is loaded with the rest of the process
    /// setup, after no_new_privs is set.
    pub fn loads_last(&self, no_new_privileges: bool) -> bool {
        no_new_privileges && self.listener.is_none()
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
    ///
    /// Returns the listener fd (close-on-exec) when the filter has SCMP_ACT_NOTIFY rules.
    pub fn load(&self) -> Result<Option<OwnedFd>, SecurityError> {
        if self.program.is_empty() {
            return Ok(None);
        }
        let fail = |errno| SecurityError::Apply {
            step: "install seccomp filter (seccomp SECCOMP_SET_MODE_FILTER)",
            errno,
        };
        let len =
            libc::c_ushort::try_from(self.program.len()).map_err(|_| fail(nix::Error::E2BIG))?;
        // Flags this kernel lacks were refused when the plan was made.
        crate::sys::security::seccomp_set_filter(&self.program, len, self.flags).map_err(fail)
    }
}

/// The BPF program of `seccomp` (whose default action is `default`): casulo's ENOSYS prologue,
/// then libseccomp's compiled rules.
fn compile(
    seccomp: &LinuxSeccomp,
    default: ScmpAction,
) -> Result<Vec<libc::sock_filter>, SecurityError> {
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

    // Syscalls newer than the profile get ENOSYS, not the default action
    // (`seccomp_enosys`): the prologue runs first, libseccomp's program after it.
    let mut program =
        super::seccomp_enosys::prologue(seccomp).map_err(|msg| SecurityError::Invalid {
            what: "linux.seccomp".into(),
            msg,
        })?;
    program.extend(export(&ctx)?);
    Ok(program)
}

/// Whether the running kernel has the action `name` (one of [`ACTIONS`]), for `features`:
/// SCMP_ACT_NOTIFY needs user notifications and filter listeners (Linux 5.0); the others are
/// older than any kernel this runtime runs on.
pub fn action_supported(name: &str) -> bool {
    match name {
        "SCMP_ACT_NOTIFY" => {
            crate::sys::security::seccomp_action_available(libc::SECCOMP_RET_USER_NOTIF)
                && crate::sys::security::seccomp_flags_supported(NEW_LISTENER)
        }
        _ => ACTIONS.contains(&name),
    }
}

/// Whether the running kernel accepts the filter flag `name` (one of [`SUPPORTED_FLAGS`]), for
/// `features`. SECCOMP_FILTER_FLAG_TSYNC is never passed to the kernel, so always accepted.
pub fn flag_supported(name: &str) -> bool {
    let flags = match name {
        "SECCOMP_FILTER_FLAG_TSYNC" => return true,
        "SECCOMP_FILTER_FLAG_LOG" => libc::SECCOMP_FILTER_FLAG_LOG as libc::c_uint,
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as libc::c_uint,
        // The kernel takes it only together with a listener.
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => NEW_LISTENER | WAIT_KILLABLE_RECV,
        _ => return false,
    };
    crate::sys::security::seccomp_flags_supported(flags)
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

/// The actions a filter may use (all of the spec's); `features` reports this list, and a test
/// checks it against [`SeccompPlan::from_spec`].
pub const ACTIONS: [&str; 9] = [
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
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

/// The filter flags the spec knows, and those applied (`features` reports those of the latter
/// that the running kernel accepts).
pub const KNOWN_FLAGS: [&str; 4] = [
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];
pub const SUPPORTED_FLAGS: [&str; 4] = [
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
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
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

pub(super) fn arch_of(arch: Arch) -> ScmpArch {
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

    use std::path::Path;

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

    /// A profile that notifies an agent on mkdir, with `extra` spliced into the object.
    fn notify_profile(extra: &str) -> String {
        format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW"{extra},
                "syscalls":[{{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}}]}}"#
        )
    }

    fn returns(p: &SeccompPlan) -> Vec<u32> {
        p.program
            .iter()
            .filter(|i| i.code == (libc::BPF_RET | libc::BPF_K) as u16)
            .map(|i| i.k)
            .collect()
    }

    #[test]
    fn notify_compiles_with_a_listener() {
        let p = plan(&notify_profile(
            r#","listenerPath":"/run/agent.sock","listenerMetadata":"m=1""#,
        ))
        .unwrap();
        assert!(returns(&p).contains(&libc::SECCOMP_RET_USER_NOTIF), "{p:?}");
        assert_eq!(
            p.flags() as libc::c_ulong & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
        );
        assert_eq!(
            p.listener(),
            Some(&Listener {
                path: "/run/agent.sock".into(),
                metadata: Some("m=1".into())
            })
        );
        // Loaded with the process setup even under no_new_privs: the agent needs it at create.
        assert!(!p.loads_last(true) && !p.loads_last(false));
        // A relative path is the reference runtime's behaviour too (its working directory).
        let rel = plan(&notify_profile(r#","listenerPath":"agent.sock""#)).unwrap();
        assert_eq!(rel.listener().unwrap().path, Path::new("agent.sock"));
        assert_eq!(rel.listener().unwrap().metadata, None);
    }

    #[test]
    fn notify_needs_a_listener_path() {
        for extra in ["", r#","listenerPath":"""#] {
            let err = plan(&notify_profile(extra)).unwrap_err().to_string();
            assert!(err.contains("linux.seccomp.listenerPath"), "{err}");
        }
    }

    #[test]
    fn listener_path_without_notify_is_ignored() {
        let p = plan(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock",
                "listenerMetadata":"m","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        assert_eq!(p.listener(), None);
        assert_eq!(
            p.flags() as libc::c_ulong & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
            0
        );
        assert!(p.loads_last(true) && !p.loads_last(false));
    }

    #[test]
    fn listener_metadata_needs_a_listener_path() {
        let err = plan(&notify_profile(r#","listenerMetadata":"m""#))
            .unwrap_err()
            .to_string();
        assert!(err.contains("linux.seccomp.listenerMetadata"), "{err}");
        let err = plan(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerMetadata":"m"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("listenerPath"), "{err}");
    }

    #[test]
    fn notify_is_refused_where_it_would_deadlock() {
        let err = plan(r#"{"defaultAction":"SCMP_ACT_NOTIFY","listenerPath":"/a"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("defaultAction") && err.contains("SCMP_ACT_NOTIFY"),
            "{err}"
        );
        for (name, _) in NOT_NOTIFIABLE {
            let err = plan(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/a","syscalls":[
                    {{"names":["getcwd"],"action":"SCMP_ACT_NOTIFY"}},
                    {{"names":["mkdir","{name}"],"action":"SCMP_ACT_NOTIFY"}}]}}"#
            ))
            .unwrap_err()
            .to_string();
            assert!(
                err.contains("syscalls[1]") && err.contains(&format!("the {name} syscall")),
                "{err}"
            );
        }
        // Other actions on those syscalls are fine.
        plan(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["write","sendmsg"],"action":"SCMP_ACT_LOG"}]}"#,
        )
        .unwrap();
    }

    #[test]
    fn wait_killable_recv_goes_with_notify() {
        let err = plan(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/a",
                "flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}"#,
        )
        .unwrap_err();
        assert!(matches!(err, SecurityError::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("SCMP_ACT_NOTIFY"), "{err}");
        let r = plan(&notify_profile(
            r#","listenerPath":"/a","flags":["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]"#,
        ));
        if flag_supported("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV") {
            let p = r.unwrap();
            assert_eq!(p.flags(), NEW_LISTENER | WAIT_KILLABLE_RECV);
        } else {
            let err = r.unwrap_err();
            assert!(matches!(err, SecurityError::Unsupported { .. }), "{err}");
            assert!(err.to_string().contains("5.19"), "{err}");
        }
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
    }

    #[test]
    fn spec_allow_is_the_default_of_absent_flags_only() {
        let absent = plan(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
        let spec_allow = libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as libc::c_uint;
        if flag_supported("SECCOMP_FILTER_FLAG_SPEC_ALLOW") {
            assert_eq!(absent.flags(), spec_allow);
        } else {
            assert_eq!(absent.flags(), 0);
        }
        let empty = plan(r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":[]}"#).unwrap();
        assert_eq!(empty.flags(), 0);
        let log = plan(r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG"]}"#)
            .unwrap();
        assert_eq!(log.flags(), libc::SECCOMP_FILTER_FLAG_LOG as libc::c_uint);
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
        // Both name getcwd, so both get the same ENOSYS prologue.
        let p = plan(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["getcwd"],"action":"SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        let bare = plan(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
                {"names":["getcwd"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
        )
        .unwrap();
        assert_eq!(p.instructions(), bare.instructions());
        let allow = plan(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["getcwd"],"action":"SCMP_ACT_ALLOW"}]}"#,
        )
        .unwrap();
        let bare_allow = plan(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
        assert_eq!(allow.instructions(), bare_allow.instructions());
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
            plan(&format!(r#"{{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/a","syscalls":[{{"names":["getcwd"],"action":"{action}"}}]}}"#))
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
            // With a notify rule, which WAIT_KILLABLE_RECV needs; that flag is also checked
            // against the kernel when the plan is made.
            let r = plan(&notify_profile(&format!(
                r#","listenerPath":"/a","flags":["{flag}"]"#
            )));
            let kernel = flag != "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" || flag_supported(flag);
            assert_eq!(
                r.is_ok(),
                SUPPORTED_FLAGS.contains(&flag) && kernel,
                "{flag}: {r:?}"
            );
        }
    }
}
