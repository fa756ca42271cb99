//! config.json parsing and validation: any input gives a spec or a clear error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(spec) = casulo::__private::bundle::parse_spec(data) {
        if let Err(e) = casulo::__private::bundle::validate(&spec) {
            assert!(!e.to_string().is_empty());
        }
    }
});
