//! The C glue: the constructor, which must refer to glibc-only symbols
//! weakly so that musl's loader still accepts the library.
fn main() {
    println!("cargo:rerun-if-changed=src/glue.c");
    cc::Build::new()
        .file("src/glue.c")
        .flag("-fvisibility=hidden")
        .flag_if_supported("-fno-stack-protector")
        // Nothing in Rust refers to glue.o (the constructor): link all of it.
        .link_lib_modifier("+whole-archive")
        .warnings(true)
        .extra_warnings(true)
        .compile("substrate_preload_glue");
}
