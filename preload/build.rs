//! The C glue: the constructor, which must refer to glibc-only symbols
//! weakly so that musl's loader still accepts the library.
//!
//! The archive is linked by the `#[link]` attribute in lib.rs, not by a
//! `rustc-link-lib` line from here: that one would also put the constructor
//! into the unit-test binary, while the attribute is left out under
//! `cfg(test)`.
fn main() {
    println!("cargo:rerun-if-changed=src/glue.c");
    let mut build = cc::Build::new();
    build
        .file("src/glue.c")
        .flag("-fvisibility=hidden")
        .flag_if_supported("-fno-stack-protector")
        .warnings(true)
        .extra_warnings(true);
    // Working out the compiler prints cc's `rerun-if-env-changed` lines
    // (CC, CFLAGS...), which `cargo_metadata(false)` below would drop.
    build.get_compiler();
    build
        .cargo_metadata(false)
        .compile("substrate_preload_glue");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rustc-link-search=native={out_dir}");
}
