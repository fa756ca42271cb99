//! The process JSON of `exec --process`: any input gives a prepared process or a clear error,
//! never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = serde_json::from_slice::<oci_spec::runtime::Process>(data) {
        if let Err(e) = casulo::__private::process::ProcessPlan::from_spec(&p, false) {
            assert!(!e.to_string().is_empty());
        }
    }
});
