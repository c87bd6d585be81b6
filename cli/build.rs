//! Builds the world init (`init/world-init.c`), which `substrate-cli`
//! embeds and runs as PID 1 of its worlds (`src/spec/init.rs`).
//!
//! It must run in any world, a rootfs without a libc included, so it is a
//! static binary: musl-gcc's (Debian's musl-tools, which `make deps`
//! installs; about 40 KB) when there is one, else the C compiler's with its
//! static libc (glibc's `libc.a`; about 700 KB). `SUBSTRATE_INIT_CC`
//! chooses the compiler.

use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "init/world-init.c";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-env-changed=SUBSTRATE_INIT_CC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("substrate-init");
    let compilers = match std::env::var("SUBSTRATE_INIT_CC") {
        Ok(cc) => vec![cc],
        // The host's compilers build for the host only.
        Err(_) if std::env::var("TARGET").ok() != std::env::var("HOST").ok() => panic!(
            "cross-compiling substrate-cli: set SUBSTRATE_INIT_CC to a C compiler \
             that builds static binaries for the target"
        ),
        Err(_) => vec!["musl-gcc".to_owned(), "cc".to_owned()],
    };
    let mut failures = Vec::new();
    for cc in &compilers {
        let built = Command::new(cc)
            .args(["-static", "-Os", "-s", "-Wall", "-Wextra", "-Werror", "-o"])
            .arg(&out)
            .arg(SOURCE)
            .output();
        match built {
            Ok(output) if output.status.success() => return,
            Ok(output) => failures.push(format!(
                "{cc}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            )),
            Err(e) => failures.push(format!("{cc}: {e}")),
        }
    }
    panic!(
        "cannot build the world init ({SOURCE}) as a static binary; install \
         musl-tools (`make deps`) or a static libc (libc6-dev):\n{}",
        failures.join("\n")
    );
}
