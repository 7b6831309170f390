//! Gives the shared library its SONAME: the ABI major version only (`libumbra.so.1`), so programs
//! linked against any 1.x keep loading every later 1.y. Keep the major in step with `ABI_MAJOR` in
//! src/lib.rs and `UMBRA_ABI_MAJOR` in cbindgen.toml (a test checks all three).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if matches!(
        os.as_str(),
        "linux" | "android" | "freebsd" | "netbsd" | "openbsd" | "dragonfly" | "illumos"
    ) {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libumbra.so.1");
    }
}
