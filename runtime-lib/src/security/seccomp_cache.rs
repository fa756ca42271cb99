//! The compiled BPF program of a seccomp profile, kept in the state root between commands.
//!
//! libseccomp takes milliseconds to compile a profile of an engine's size (hundreds of syscall
//! names, each resolved and merged into a decision tree), and engines send the same profile
//! for every container and every exec. The program depends only on the profile, the
//! libseccomp that compiled it, casulo's own prologue (the ENOSYS answer for newer syscalls)
//! the kernel's release and the architecture: their SHA-256 names the entry, `<root>/.seccomp~cache/<digest>`
//! (`~` is not allowed in a container id, so the directory is never taken for a container).
//!
//! An entry is written to a temporary file and renamed into place, so a reader sees a whole
//! entry or none. It is verified when read: its header repeats the digest it is stored under,
//! and a SHA-256 of the header and program closes it. An entry that fails any check, or that
//! cannot be read, is compiled again and rewritten; it is never loaded. Writing is best
//! effort: a read-only or full state root costs the compile, not the container.

use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

/// The cache directory's name in the state root.
pub const CACHE_DIR: &str = ".seccomp~cache";
/// First bytes of an entry; the version changes with the format.
const MAGIC: &[u8; 8] = b"CSLBPF01";
/// Magic, key, instruction count.
const HEADER: usize = 8 + 32 + 4;
/// The kernel's BPF_MAXINSNS: no filter program is longer.
const MAX_INSNS: usize = 4096;

/// The cache of one state root.
#[derive(Debug, Clone)]
pub struct SeccompCache {
    dir: PathBuf,
}

/// The digest an entry is stored under.
pub type Key = [u8; 32];

impl SeccompCache {
    pub fn in_root(root: &Path) -> SeccompCache {
        SeccompCache {
            dir: root.join(CACHE_DIR),
        }
    }

    /// What the compiled program of `seccomp` depends on, digested.
    pub fn key(seccomp: &LinuxSeccomp) -> Key {
        let mut h = Sha256::new();
        h.update(MAGIC);
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        h.update([0]);
        let v = libseccomp::ScmpVersion::current().ok();
        h.update(format!("{v:?}").as_bytes());
        h.update([0]);
        h.update(std::env::consts::ARCH.as_bytes());
        h.update([0]);
        // Which actions and flags are accepted depends on the kernel (a state root on disk
        // may outlive a reboot into another one).
        if let Ok(u) = nix::sys::utsname::uname() {
            h.update(u.release().as_encoded_bytes());
        }
        h.update([0]);
        // serde_json writes a struct's fields in their declared order: the same profile gives
        // the same bytes.
        h.update(serde_json::to_vec(seccomp).unwrap_or_default());
        h.finalize().into()
    }

    fn path(&self, key: &Key) -> PathBuf {
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(hex)
    }

    /// The program stored under `key`, if an entry is there and passes every check.
    pub fn get(&self, key: &Key) -> Option<Vec<libc::sock_filter>> {
        let path = self.path(key);
        let bytes = std::fs::read(&path).ok()?;
        let program = decode(key, &bytes);
        if program.is_none() {
            tracing::debug!("seccomp cache: {} is not a valid entry", path.display());
        }
        program
    }

    /// Store `program` under `key`, atomically; failures are logged and otherwise ignored.
    pub fn put(&self, key: &Key, program: &[libc::sock_filter]) {
        if let Err(e) = self.try_put(key, program) {
            tracing::debug!("seccomp cache: not stored in {}: {e}", self.dir.display());
        }
    }

    fn try_put(&self, key: &Key, program: &[libc::sock_filter]) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let path = self.path(key);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&encode(key, program))?;
            std::fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

fn encode(key: &Key, program: &[libc::sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + program.len() * 8 + 32);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(key);
    out.extend_from_slice(&(program.len() as u32).to_le_bytes());
    for i in program {
        out.extend_from_slice(&i.code.to_le_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_le_bytes());
    }
    let sum: [u8; 32] = Sha256::digest(&out).into();
    out.extend_from_slice(&sum);
    out
}

fn decode(key: &Key, bytes: &[u8]) -> Option<Vec<libc::sock_filter>> {
    let body_len = bytes.len().checked_sub(32)?;
    let (body, sum) = bytes.split_at(body_len);
    if body.len() < HEADER || &body[..8] != MAGIC || &body[8..40] != key {
        return None;
    }
    let count = u32::from_le_bytes(body[40..44].try_into().ok()?) as usize;
    if count == 0 || count > MAX_INSNS || body.len() != HEADER + count * 8 {
        return None;
    }
    if Sha256::digest(body).as_slice() != sum {
        return None;
    }
    Some(
        body[HEADER..]
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_le_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn program() -> Vec<libc::sock_filter> {
        (0..5u16)
            .map(|i| libc::sock_filter {
                code: i,
                jt: i as u8,
                jf: 2,
                k: 0xdead_0000 + u32::from(i),
            })
            .collect()
    }

    fn same(a: &[libc::sock_filter], b: &[libc::sock_filter]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| (x.code, x.jt, x.jf, x.k) == (y.code, y.jt, y.jf, y.k))
    }

    #[test]
    fn an_entry_comes_back_as_stored() {
        let root = std::env::temp_dir().join(format!("casulo-bpf-cache-{}", std::process::id()));
        let cache = SeccompCache::in_root(&root);
        let key = [7; 32];
        assert!(cache.get(&key).is_none());
        cache.put(&key, &program());
        assert!(same(&cache.get(&key).unwrap(), &program()));
        // No temporary file is left beside it.
        assert_eq!(std::fs::read_dir(&cache.dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_damaged_entry_is_refused() {
        let key = [1; 32];
        let good = encode(&key, &program());
        assert!(decode(&key, &good).is_some());
        // Any flipped byte: magic, key, count, an instruction, the checksum.
        for i in [0, 9, 41, HEADER + 3, good.len() - 1] {
            let mut bad = good.clone();
            bad[i] ^= 0x40;
            assert!(
                decode(&key, &bad).is_none(),
                "byte {i} flipped was accepted"
            );
        }
        // Cut short, or stored under another key.
        assert!(decode(&key, &good[..good.len() - 9]).is_none());
        assert!(decode(&[2; 32], &good).is_none());
        assert!(decode(&key, b"").is_none());
    }

    #[test]
    fn the_key_follows_the_profile() {
        let a: LinuxSeccomp =
            serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
        let b: LinuxSeccomp =
            serde_json::from_str(r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#).unwrap();
        assert_eq!(SeccompCache::key(&a), SeccompCache::key(&a.clone()));
        assert_ne!(SeccompCache::key(&a), SeccompCache::key(&b));
    }
}
