//! state.json parsing: a corrupt or hostile state file gives an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(saved) = casulo::__private::state::parse_saved(data) {
        let _ = to_state(&saved);
    }
});

fn to_state(saved: &casulo::__private::state::Saved) -> casulo::State {
    saved.oci_state(casulo::Status::Stopped)
}
