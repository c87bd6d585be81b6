//! The environment of a CLI world: least privilege, so not the caller's
//! whole environment (tokens, cloud credentials, agent sockets) but
//!
//! 1. `PATH`, `HOME`, `TERM`, `LANG` and `USER` from the caller, each when
//!    set (`PATH` falls back to the usual system one when unset);
//! 2. each `--env-pass NAME`, with the caller's value (an error if unset);
//! 3. each `--env KEY=VALUE`.
//!
//! A later entry replaces an earlier one of the same name.

use std::ffi::OsString;

use anyhow::{bail, Result};

/// The caller's variables a world gets without being asked.
pub const INHERITED: [&str; 5] = ["PATH", "HOME", "TERM", "LANG", "USER"];

/// `PATH` when the caller has none (the OCI default spec's).
const FALLBACK_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What the user asked to add.
#[derive(Clone, Debug, Default)]
pub struct EnvArgs {
    /// `--env KEY=VALUE`, in order.
    pub set: Vec<String>,
    /// `--env-pass NAME`, in order.
    pub pass: Vec<String>,
}

impl EnvArgs {
    /// Checks the flags' syntax (before anything is created).
    pub fn validate(&self) -> Result<()> {
        for var in &self.set {
            let Some((key, value)) = var.split_once('=') else {
                bail!(
                    "--env {var:?}: give KEY=VALUE (to pass the caller's value, use --env-pass {var})"
                );
            };
            if !valid_name(key) || value.contains('\0') {
                bail!("--env {var:?}: the name before '=' must be non-empty");
            }
        }
        for name in &self.pass {
            if !valid_name(name) {
                bail!("--env-pass {name:?}: not a variable name (give only the name, e.g. --env-pass GITHUB_TOKEN)");
            }
        }
        Ok(())
    }

    /// The world's environment, given how the caller's is read.
    pub fn world_env(&self, caller: impl Fn(&str) -> Option<OsString>) -> Result<Vec<String>> {
        let mut env = Vec::new();
        for name in INHERITED {
            match caller(name) {
                Some(value) => env.push(format!("{name}={}", utf8(name, value)?)),
                None if name == "PATH" => env.push(format!("PATH={FALLBACK_PATH}")),
                None => {}
            }
        }
        self.add_to(env, caller)
    }

    /// `env` (a bundle's own, or the inherited part) with `--env-pass` and
    /// `--env` added, each replacing a variable of the same name.
    pub fn add_to(
        &self,
        env: Vec<String>,
        caller: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Vec<String>> {
        self.validate()?;
        let mut env = env;
        let mut put = |var: String| {
            let key = var.split('=').next().unwrap_or_default().to_owned();
            env.retain(|e| e.split('=').next() != Some(key.as_str()));
            env.push(var);
        };
        for name in &self.pass {
            match caller(name) {
                Some(value) => put(format!("{name}={}", utf8(name, value)?)),
                None => bail!(
                    "--env-pass {name}: not set in this environment (set it, or give --env {name}=VALUE)"
                ),
            }
        }
        for var in &self.set {
            put(var.clone());
        }
        Ok(env)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '\0'])
}

fn utf8(name: &str, value: OsString) -> Result<String> {
    match value.into_string() {
        Ok(value) if !value.contains('\0') => Ok(value),
        _ => bail!(
            "${name} is not valid UTF-8: a world's environment is text (give --env {name}=VALUE)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn caller(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn only_the_five_are_inherited() {
        let env = EnvArgs::default()
            .world_env(caller(&[
                ("PATH", "/bin"),
                ("HOME", "/root"),
                ("TERM", "xterm"),
                ("LANG", "C.UTF-8"),
                ("USER", "root"),
                ("AWS_SECRET_ACCESS_KEY", "x"),
                ("SSH_AUTH_SOCK", "/tmp/s"),
            ]))
            .unwrap();
        assert_eq!(
            env,
            [
                "PATH=/bin",
                "HOME=/root",
                "TERM=xterm",
                "LANG=C.UTF-8",
                "USER=root"
            ]
        );
    }

    #[test]
    fn path_falls_back_and_unset_ones_are_left_out() {
        let env = EnvArgs::default()
            .world_env(caller(&[("HOME", "/h")]))
            .unwrap();
        assert_eq!(env, [format!("PATH={FALLBACK_PATH}"), "HOME=/h".into()]);
    }

    #[test]
    fn pass_and_set_add_and_replace_in_order() {
        let args = EnvArgs {
            set: vec!["A=1".into(), "HOME=/w".into(), "B==x=".into(), "E=".into()],
            pass: vec!["TOKEN".into()],
        };
        let env = args
            .world_env(caller(&[("HOME", "/root"), ("TOKEN", "t"), ("PATH", "/p")]))
            .unwrap();
        assert_eq!(env, ["PATH=/p", "TOKEN=t", "A=1", "HOME=/w", "B==x=", "E="]);
        let bundle = args
            .add_to(
                vec!["PATH=/bundle".into(), "A=0".into(), "Z=z".into()],
                caller(&[("TOKEN", "t"), ("PATH", "/p")]),
            )
            .unwrap();
        assert_eq!(
            bundle,
            [
                "PATH=/bundle",
                "Z=z",
                "TOKEN=t",
                "A=1",
                "HOME=/w",
                "B==x=",
                "E="
            ]
        );
    }

    #[test]
    fn bad_flags_say_what_to_do() {
        let unset = EnvArgs {
            pass: vec!["NOPE".into()],
            ..Default::default()
        };
        let e = unset.world_env(caller(&[])).unwrap_err().to_string();
        assert!(
            e.contains("--env-pass NOPE") && e.contains("not set"),
            "{e}"
        );
        let bare = EnvArgs {
            set: vec!["FOO".into()],
            ..Default::default()
        };
        let e = bare.validate().unwrap_err().to_string();
        assert!(e.contains("--env-pass FOO"), "{e}");
        let empty = EnvArgs {
            set: vec!["=x".into()],
            ..Default::default()
        };
        assert!(empty.validate().is_err());
        let named = EnvArgs {
            pass: vec!["A=B".into()],
            ..Default::default()
        };
        assert!(named.validate().is_err());
    }
}
