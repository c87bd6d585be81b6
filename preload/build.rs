//! The C glue: what Rust cannot write on stable (C-variadic `open`), and
//! what must be weak so that musl's loader still accepts the library.
fn main() {
    println!("cargo:rerun-if-changed=src/glue.c");
    cc::Build::new()
        .file("src/glue.c")
        .flag("-fvisibility=hidden")
        .flag_if_supported("-fno-stack-protector")
        .warnings(true)
        .extra_warnings(true)
        .compile("substrate_preload_glue");
}
