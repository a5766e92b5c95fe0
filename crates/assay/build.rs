//! Link flags for the `assay` binary.
//!
//! On Linux with glibc, `-z pack-relative-relocs` stores the executable's relative relocations
//! (about 23,500 of them: one per pointer in the vtables and static tables of a
//! position-independent binary) as DT_RELR bitmaps instead of 24-byte entries. The binary is
//! 0.55 MB smaller and loads at the same random address as before. It needs GNU ld 2.38 or
//! newer (or lld) to link and glibc 2.36 or newer to run (Debian 12, Ubuntu 24.04, RHEL 10);
//! `ASSAY_NO_RELR=1` at build time leaves the flag out, for older systems.

fn main() {
    println!("cargo::rerun-if-env-changed=ASSAY_NO_RELR");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let wanted = std::env::var_os("ASSAY_NO_RELR").is_none_or(|v| v.is_empty() || v == "0");
    if target_os == "linux" && target_env == "gnu" && wanted {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
