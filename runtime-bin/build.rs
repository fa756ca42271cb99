//! Link options of the `casulo` binary.

fn main() {
    // Relative relocations packed as DT_RELR (glibc 2.36 and later read them): the dynamic
    // loader applies them in a fraction of the time and pages of RELA entries, and every
    // create, run and exec starts the binary twice (see casulo::prepare_process).
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    println!("cargo:rerun-if-changed=build.rs");
}
