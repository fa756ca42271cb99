//! Mount option parsing: any list of options gives flags or a clear error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let opts: Vec<&str> = text.split(',').collect();
    if let Err(e) = casulo::__private::rootfs::parse_options(&opts) {
        assert!(!e.to_string().is_empty());
    }
});
