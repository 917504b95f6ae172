//! Start-up code placed together in the release binary (idle RSS budget, bench/RESULTS.md).
//!
//! `nimbus up` runs ~2 MB of the binary's 22 MB of code before it is ready; left where the linker
//! puts it, that code is spread over ~140 separate 64 KiB windows, and the kernel maps each
//! window whole on the first touch (fault-around), so ~8 MB of code stayed resident while idle.
//! `startup.order` lists the functions start-up runs (made by `scripts/startup-order`); the
//! linker puts them first, next to each other. A name the build no longer has is skipped: a
//! stale list costs memory, never correctness.

fn main() {
    println!("cargo:rerun-if-changed=startup.order");
    println!("cargo:rerun-if-changed=build.rs");
    let target = |key: &str| std::env::var(key).unwrap_or_default();
    // lld is Rust's default linker on x86_64 Linux (GNU ld has no such option); debug builds
    // are not what is measured, so their link stays as it was.
    let lld = target("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && target("CARGO_CFG_TARGET_OS") == "linux"
        && target("CARGO_CFG_TARGET_ENV") == "gnu";
    if lld && target("PROFILE") == "release" {
        let order = std::path::Path::new(&target("CARGO_MANIFEST_DIR")).join("startup.order");
        println!("cargo:rustc-link-arg-bin=nimbus=-Wl,--symbol-ordering-file={}", order.display());
        println!("cargo:rustc-link-arg-bin=nimbus=-Wl,--no-warn-symbol-ordering");
        // Packed relative relocations (DT_RELR): the position-independent binary's ~25,000
        // relative relocations take 8 KB instead of 620 KB, which start-up read whole (idle RSS
        // −1 MB, bench/RESULTS.md). Only a glibc of 2.36 or later applies them (an older one
        // refuses to start the binary), so only when the C library built against is one.
        if target("HOST") == target("TARGET") && host_glibc().is_some_and(|version| version >= (2, 36)) {
            println!("cargo:rustc-link-arg-bin=nimbus=-Wl,-z,pack-relative-relocs");
        }
    }
}

/// The host's glibc version (`getconf GNU_LIBC_VERSION` says `glibc 2.36`).
fn host_glibc() -> Option<(u32, u32)> {
    let output = std::process::Command::new("getconf").arg("GNU_LIBC_VERSION").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let (major, minor) = text.trim().strip_prefix("glibc ")?.split_once('.')?;
    Some((major.parse().ok()?, minor.split('.').next()?.parse().ok()?))
}
