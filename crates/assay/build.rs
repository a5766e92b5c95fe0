//! Link flags for the `assay` binary.
//!
//! On Linux with glibc, `-z pack-relative-relocs` stores the executable's relative relocations
//! (about 23,500 of them: one per pointer in the vtables and static tables of a
//! position-independent binary) as DT_RELR bitmaps instead of 24-byte entries. The binary is
//! 0.55 MB smaller and loads at the same random address as before. It needs GNU ld 2.38 or
//! newer (or lld) to link and glibc 2.36 or newer to run (Debian 12, Ubuntu 24.04, RHEL 10), so
//! it is used only for a native build on a system whose own glibc is that new (a binary built
//! there runs there); `ASSAY_NO_RELR=1` at build time leaves it out anyway, for a binary meant
//! for older systems.

use std::process::Command;

fn main() {
    println!("cargo::rerun-if-env-changed=ASSAY_NO_RELR");
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    let wanted = std::env::var_os("ASSAY_NO_RELR").is_none_or(|v| v.is_empty() || v == "0");
    let native = env("HOST") == env("TARGET");
    if wanted
        && native
        && env("CARGO_CFG_TARGET_OS") == "linux"
        && env("CARGO_CFG_TARGET_ENV") == "gnu"
        && host_glibc_at_least(2, 36)
    {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether this machine's glibc (`getconf GNU_LIBC_VERSION`: "glibc 2.36") is at least
/// `major.minor`; `false` when that cannot be told.
fn host_glibc_at_least(major: u32, minor: u32) -> bool {
    let Ok(out) = Command::new("getconf").arg("GNU_LIBC_VERSION").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(version) = text.trim().strip_prefix("glibc ") else {
        return false;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    found >= (major, minor)
}
