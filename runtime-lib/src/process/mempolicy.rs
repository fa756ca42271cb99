//! `linux.memoryPolicy`: the NUMA memory policy of the container's processes (set_mempolicy(2)).
//! Checked when the plan is built — the mode's rules for nodes and flags, and the nodes against
//! the host's online nodes — and applied by the init and by every exec'd process (as with runc)
//! with the scheduling settings, before anything of the user's runs. The policy lasts across
//! execve and children inherit it. set_mempolicy needs no privilege.

use oci_spec::runtime::{LinuxMemoryPolicy, MemoryPolicyFlagType, MemoryPolicyModeType};
use serde_json::Value;

use super::ProcessError;

/// The modes by their runtime-spec names, with their numbers of `linux/mempolicy.h`.
pub const MODES: [(&str, MemoryPolicyModeType, i32); 7] = [
    ("MPOL_DEFAULT", MemoryPolicyModeType::MpolDefault, 0),
    ("MPOL_PREFERRED", MemoryPolicyModeType::MpolPreferred, 1),
    ("MPOL_BIND", MemoryPolicyModeType::MpolBind, 2),
    ("MPOL_INTERLEAVE", MemoryPolicyModeType::MpolInterleave, 3),
    ("MPOL_LOCAL", MemoryPolicyModeType::MpolLocal, 4),
    (
        "MPOL_PREFERRED_MANY",
        MemoryPolicyModeType::MpolPreferredMany,
        5,
    ),
    (
        "MPOL_WEIGHTED_INTERLEAVE",
        MemoryPolicyModeType::MpolWeightedInterleave,
        6,
    ),
];

/// The mode flags by their runtime-spec names, with their bits of `linux/mempolicy.h`.
pub const FLAGS: [(&str, MemoryPolicyFlagType, i32); 3] = [
    (
        "MPOL_F_NUMA_BALANCING",
        MemoryPolicyFlagType::MpolFNumaBalancing,
        1 << 13,
    ),
    (
        "MPOL_F_RELATIVE_NODES",
        MemoryPolicyFlagType::MpolFRelativeNodes,
        1 << 14,
    ),
    (
        "MPOL_F_STATIC_NODES",
        MemoryPolicyFlagType::MpolFStaticNodes,
        1 << 15,
    ),
];

/// The largest node id any kernel has (`MAX_NUMNODES` is at most 2^10); it also bounds the
/// mask this runtime builds.
pub const MAX_NODE: u32 = 1023;

/// Where the kernel lists the online NUMA nodes; absent on a kernel without NUMA support.
const ONLINE_NODES: &str = "/sys/devices/system/node/online";

const WORD_BITS: u32 = libc::c_ulong::BITS;

use super::scheduling::{invalid, names};

/// The policy, prepared for set_mempolicy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemPolicyPlan {
    /// The mode's name, for messages.
    pub mode: &'static str,
    /// The mode or'ed with its flags, as set_mempolicy takes it.
    pub value: i32,
    /// The nodes as the config lists them, for messages.
    pub nodes: String,
    /// The node mask: bit n of word n / 64 is node n; empty for no nodes.
    pub mask: Vec<libc::c_ulong>,
}

impl MemPolicyPlan {
    /// Check `linux.memoryPolicy` against the host's online nodes. No side effects.
    pub fn from_spec(p: &LinuxMemoryPolicy) -> Result<MemPolicyPlan, ProcessError> {
        let online = match std::fs::read_to_string(ONLINE_NODES) {
            Ok(text) => parse_nodes(text.trim()).map_err(|e| {
                invalid(
                    "linux.memoryPolicy",
                    format!("cannot read the host's online nodes ({ONLINE_NODES}): {e}"),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(invalid(
                    "linux.memoryPolicy",
                    format!("this kernel has no NUMA support ({ONLINE_NODES} is missing)"),
                ))
            }
            Err(e) => {
                return Err(invalid(
                    "linux.memoryPolicy",
                    format!("read {ONLINE_NODES}: {e}"),
                ))
            }
        };
        MemPolicyPlan::check(p, &online)
    }

    /// The checks of [`MemPolicyPlan::from_spec`], with the online nodes given.
    pub fn check(p: &LinuxMemoryPolicy, online: &[u32]) -> Result<MemPolicyPlan, ProcessError> {
        let (mode, _, number) = MODES
            .iter()
            .find(|(_, m, _)| *m == p.mode())
            .copied()
            .expect("every mode is in the table");
        let flags = super::scheduling::or_bits(&FLAGS, p.flags().iter().flatten());
        let has = |f: MemoryPolicyFlagType| p.flags().iter().flatten().any(|g| *g == f);
        let static_nodes = has(MemoryPolicyFlagType::MpolFStaticNodes);
        let relative_nodes = has(MemoryPolicyFlagType::MpolFRelativeNodes);
        let balancing = has(MemoryPolicyFlagType::MpolFNumaBalancing);
        if static_nodes && relative_nodes {
            return Err(invalid(
                "linux.memoryPolicy.flags",
                "MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES exclude each other",
            ));
        }
        let list = p.nodes().clone().unwrap_or_default();
        // The words "invalid memory policy node" and "mode requires 0 nodes but got N" are
        // runc's, which engines and runc's tests look for.
        let nodes = parse_nodes(&list).map_err(|e| {
            invalid(
                "linux.memoryPolicy.nodes",
                format!("invalid memory policy nodes {list:?}: {e}"),
            )
        })?;
        match p.mode() {
            MemoryPolicyModeType::MpolDefault | MemoryPolicyModeType::MpolLocal => {
                if !nodes.is_empty() {
                    return Err(invalid(
                        "linux.memoryPolicy.nodes",
                        format!(
                            "{mode} takes no nodes, not {list:?} (the mode requires 0 nodes \
                             but got {})",
                            nodes.len()
                        ),
                    ));
                }
                if flags != 0 {
                    return Err(invalid(
                        "linux.memoryPolicy.flags",
                        format!("{mode} takes no flags"),
                    ));
                }
            }
            MemoryPolicyModeType::MpolPreferred => {
                // No nodes means "the local node"; the node flags need nodes to act on.
                if nodes.is_empty() && (static_nodes || relative_nodes) {
                    return Err(invalid(
                        "linux.memoryPolicy.nodes",
                        "MPOL_PREFERRED with MPOL_F_STATIC_NODES or MPOL_F_RELATIVE_NODES \
                         needs at least one node",
                    ));
                }
            }
            _ => {
                if nodes.is_empty() {
                    return Err(invalid(
                        "linux.memoryPolicy.nodes",
                        format!("{mode} needs at least one node"),
                    ));
                }
            }
        }
        if balancing
            && !matches!(
                p.mode(),
                MemoryPolicyModeType::MpolBind | MemoryPolicyModeType::MpolPreferredMany
            )
        {
            return Err(invalid(
                "linux.memoryPolicy.flags",
                format!(
                    "MPOL_F_NUMA_BALANCING goes with MPOL_BIND or MPOL_PREFERRED_MANY, not {mode}"
                ),
            ));
        }
        // Relative node numbers are positions in the allowed set, not node ids.
        if !relative_nodes {
            if let Some(n) = nodes.iter().find(|n| !online.contains(n)) {
                return Err(invalid(
                    "linux.memoryPolicy.nodes",
                    format!(
                        "node {n} is not online on this host (online: {})",
                        format_nodes(online)
                    ),
                ));
            }
        }
        Ok(MemPolicyPlan {
            mode,
            value: number | flags,
            nodes: list,
            mask: node_mask(&nodes),
        })
    }

    /// Set it for the calling process. Called before any seccomp filter, which may not allow
    /// set_mempolicy.
    pub fn apply(&self) -> Result<(), ProcessError> {
        crate::sys::sched::set_mempolicy(self.value, &self.mask).map_err(|source| {
            ProcessError::Sys {
                what: format!(
                    "linux.memoryPolicy: set_mempolicy({}, nodes {:?})",
                    self.mode, self.nodes
                ),
                source,
            }
        })
    }
}

/// A node list as the kernel and the spec write it, e.g. `0-3,7`: sorted node ids, each once.
/// The empty list is no nodes.
pub fn parse_nodes(list: &str) -> Result<Vec<u32>, String> {
    let mut nodes = Vec::new();
    if list.trim().is_empty() {
        return Ok(nodes);
    }
    let node = |s: &str| -> Result<u32, String> {
        let n: u32 = s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a node number"))?;
        if n > MAX_NODE {
            return Err(format!(
                "node {n} is above the largest node id ({MAX_NODE})"
            ));
        }
        Ok(n)
    };
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (node(a)?, node(b)?);
                if a > b {
                    return Err(format!("{part:?}: the range goes down"));
                }
                nodes.extend(a..=b);
            }
            None => nodes.push(node(part)?),
        }
    }
    nodes.sort_unstable();
    nodes.dedup();
    Ok(nodes)
}

/// Sorted node ids written back as a list with ranges.
fn format_nodes(nodes: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < nodes.len() {
        let start = nodes[i];
        let mut end = start;
        while i + 1 < nodes.len() && nodes[i + 1] == end + 1 {
            i += 1;
            end = nodes[i];
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    if out.is_empty() {
        "none".into()
    } else {
        out.join(",")
    }
}

/// The words of a node mask with the bits of `nodes` set.
fn node_mask(nodes: &[u32]) -> Vec<libc::c_ulong> {
    let Some(&max) = nodes.iter().max() else {
        return Vec::new();
    };
    let mut mask = vec![0 as libc::c_ulong; (max / WORD_BITS + 1) as usize];
    for &n in nodes {
        mask[(n / WORD_BITS) as usize] |= 1 << (n % WORD_BITS);
    }
    mask
}

/// For a config whose typed parse failed: name the field of a missing or unknown mode and of
/// an unknown flag.
pub(crate) fn check_json(linux: &Value) -> Result<(), String> {
    let Some(p) = linux.get("memoryPolicy") else {
        return Ok(());
    };
    match p.get("mode") {
        None => {
            return Err(format!(
                "linux.memoryPolicy.mode: invalid memory policy mode: missing (one of {})",
                names(&MODES)
            ))
        }
        Some(Value::String(m)) if !MODES.iter().any(|(n, _, _)| n == m) => {
            return Err(format!(
                "linux.memoryPolicy.mode: invalid memory policy mode {m:?} (one of {})",
                names(&MODES)
            ))
        }
        _ => {}
    }
    for (i, f) in p
        .get("flags")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(f) = f.as_str().filter(|f| !FLAGS.iter().any(|(n, _, _)| n == f)) {
            return Err(format!(
                "linux.memoryPolicy.flags[{i}]: invalid memory policy flag {f:?} (one of {})",
                names(&FLAGS)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(v: Value) -> LinuxMemoryPolicy {
        serde_json::from_value(v).unwrap()
    }

    fn check(v: Value, online: &[u32]) -> Result<MemPolicyPlan, String> {
        MemPolicyPlan::check(&policy(v), online).map_err(|e| e.to_string())
    }

    #[test]
    fn node_lists() {
        assert_eq!(parse_nodes("0-3,7").unwrap(), vec![0, 1, 2, 3, 7]);
        assert_eq!(parse_nodes("3,1,1-2").unwrap(), vec![1, 2, 3]);
        assert_eq!(parse_nodes("").unwrap(), Vec::<u32>::new());
        assert!(parse_nodes("3-1").unwrap_err().contains("goes down"));
        assert!(parse_nodes("x").unwrap_err().contains("not a node number"));
        assert!(parse_nodes("0,").is_err());
        assert!(parse_nodes("0-9876543210").is_err());
        assert!(parse_nodes("1024").unwrap_err().contains("largest node id"));
        assert_eq!(format_nodes(&[0, 1, 2, 3, 7, 9, 10]), "0-3,7,9-10");
    }

    #[test]
    fn masks_set_one_bit_per_node() {
        assert_eq!(node_mask(&[]), Vec::<libc::c_ulong>::new());
        assert_eq!(node_mask(&[0, 2]), vec![0b101]);
        let m = node_mask(&[1, WORD_BITS + 3]);
        assert_eq!(m, vec![0b10, 0b1000]);
    }

    #[test]
    fn modes_flags_and_nodes() {
        let p = check(json!({"mode": "MPOL_BIND", "nodes": "0"}), &[0]).unwrap();
        assert_eq!((p.mode, p.value, p.mask.clone()), ("MPOL_BIND", 2, vec![1]));
        let p = check(
            json!({"mode": "MPOL_INTERLEAVE", "nodes": "0-1", "flags": ["MPOL_F_STATIC_NODES"]}),
            &[0, 1],
        )
        .unwrap();
        assert_eq!(p.value, 3 | 1 << 15);
        let p = check(json!({"mode": "MPOL_DEFAULT"}), &[0]).unwrap();
        assert_eq!((p.value, p.mask.len()), (0, 0));
        assert!(check(json!({"mode": "MPOL_PREFERRED"}), &[0]).is_ok());
        assert!(check(json!({"mode": "MPOL_LOCAL", "nodes": ""}), &[0]).is_ok());
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (
                json!({"mode": "MPOL_BIND"}),
                "nodes: MPOL_BIND needs at least one node",
            ),
            (
                json!({"mode": "MPOL_PREFERRED_MANY", "nodes": ""}),
                "needs at least one node",
            ),
            (
                json!({"mode": "MPOL_DEFAULT", "nodes": "0-7"}),
                "nodes: MPOL_DEFAULT takes no nodes",
            ),
            (
                json!({"mode": "MPOL_LOCAL", "nodes": "0"}),
                "MPOL_LOCAL takes no nodes",
            ),
            (
                json!({"mode": "MPOL_LOCAL", "flags": ["MPOL_F_STATIC_NODES"]}),
                "flags: MPOL_LOCAL takes no flags",
            ),
            (
                json!({"mode": "MPOL_BIND", "nodes": "99"}),
                "nodes: node 99 is not online on this host (online: 0-1)",
            ),
            (
                json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}),
                "exclude each other",
            ),
            (
                json!({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]}),
                "MPOL_F_NUMA_BALANCING goes with MPOL_BIND",
            ),
            (
                json!({"mode": "MPOL_PREFERRED", "flags": ["MPOL_F_RELATIVE_NODES"]}),
                "needs at least one node",
            ),
            (
                json!({"mode": "MPOL_BIND", "nodes": "0-"}),
                "linux.memoryPolicy.nodes: invalid memory policy nodes \"0-\": \"\" is not a node number",
            ),
        ];
        for (v, want) in cases {
            let e = check(v.clone(), &[0, 1]).unwrap_err();
            assert!(
                e.contains("linux.memoryPolicy") && e.contains(want),
                "{v}: {e}"
            );
        }
    }

    #[test]
    fn relative_nodes_are_not_node_ids() {
        let p = check(
            json!({"mode": "MPOL_BIND", "nodes": "5", "flags": ["MPOL_F_RELATIVE_NODES"]}),
            &[0],
        )
        .unwrap();
        assert_eq!(p.value, 2 | 1 << 14);
    }

    #[test]
    fn unknown_names_name_the_field() {
        let linux = |p: Value| json!({ "memoryPolicy": p });
        let e = check_json(&linux(json!({"mode": "INTERLEAVE", "nodes": "0"}))).unwrap_err();
        assert!(
            e.contains("linux.memoryPolicy.mode: invalid memory policy mode \"INTERLEAVE\""),
            "{e}"
        );
        let e = check_json(&linux(json!({"nodes": "0"}))).unwrap_err();
        assert!(
            e.contains("linux.memoryPolicy.mode: invalid memory policy mode: missing"),
            "{e}"
        );
        let e = check_json(&linux(
            json!({"mode": "MPOL_BIND", "flags": ["MPOL_F_STATIC_NODES", "bad"]}),
        ))
        .unwrap_err();
        assert!(
            e.contains("linux.memoryPolicy.flags[1]: invalid memory policy flag \"bad\""),
            "{e}"
        );
        assert!(check_json(&linux(json!({"mode": "MPOL_BIND", "nodes": "0"}))).is_ok());
        assert!(check_json(&json!({})).is_ok());
    }

    use serde_json::json;
}
