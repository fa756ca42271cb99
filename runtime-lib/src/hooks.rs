//! OCI hooks: run each hook with the container state JSON on stdin, its own args and env,
//! and its timeout.
use oci_spec::runtime::Hook;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{kind} hook {path}: {msg}")]
    Failed { kind: &'static str, path: String, msg: String },
}

/// Run `hooks` in order, each with `state_json` on its stdin. Stops at the first failure.
/// `kind` is the hook point's name as the spec spells it ("prestart", "createRuntime", ...).
pub fn run_hooks(kind: &'static str, hooks: &[Hook], state_json: &[u8]) -> Result<(), HookError> {
    let _ = (kind, hooks, state_json);
    unimplemented!("hooks")
}
