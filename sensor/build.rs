//! Compiles the kernel sensor's BPF programs (`bpf/sensor.bpf.c`, CO-RE C)
//! with clang; the object is embedded in the crate and loaded by libbpf at
//! run time, relocated against the running kernel's BTF.
//!
//! Needs clang (Debian: `clang`) and the kernel's UAPI headers
//! (`linux-libc-dev`); libbpf's own headers come from `libbpf-sys`, which
//! builds the libbpf the loader links.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let source = "bpf/sensor.bpf.c";
    println!("cargo:rerun-if-changed={source}");
    println!("cargo:rerun-if-env-changed=CLANG");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    // bpf_tracing.h's name for the architecture, and where Debian keeps
    // that architecture's <asm/...> headers.
    let (target_arch, multiarch) = match arch.as_str() {
        "x86_64" => ("x86", "x86_64-linux-gnu"),
        "aarch64" => ("arm64", "aarch64-linux-gnu"),
        "riscv64" => ("riscv", "riscv64-linux-gnu"),
        other => panic!("the kernel sensor has no BPF build for {other}"),
    };
    let libbpf_include = env::var("DEP_BPF_INCLUDE").expect("libbpf-sys exports its headers");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let object = out.join("sensor.bpf.o");
    let status = Command::new(&clang)
        .args(["-target", "bpf", "-g", "-O2", "-Wall", "-Werror"])
        .arg(format!("-D__TARGET_ARCH_{target_arch}"))
        .arg("-I")
        .arg(&libbpf_include)
        .arg("-I")
        .arg(format!("/usr/include/{multiarch}"))
        .args(["-c", source, "-o"])
        .arg(&object)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run {clang} to build the kernel sensor ({e}): apt-get install clang")
        });
    assert!(status.success(), "{clang} failed on {source}");
}
