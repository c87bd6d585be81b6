use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use liboci_cli::Spec as SpecArgs;
use oci_spec::runtime::Spec;

/// Writes a starting `config.json` (runc `spec`), refusing to overwrite one.
pub fn spec(args: SpecArgs) -> Result<()> {
    let spec = if args.rootless {
        Spec::rootless(
            nix::unistd::geteuid().as_raw(),
            nix::unistd::getegid().as_raw(),
        )
    } else {
        Spec::default()
    };
    let path = args
        .bundle
        .unwrap_or_else(|| PathBuf::from("."))
        .join("config.json");
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(serde_json::to_string_pretty(&spec)?.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
