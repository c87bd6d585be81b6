//! What a CLI world must not see of its lower layer: the default hide-list
//! (host secrets, credentials in every home, other homes, Substrate's own
//! state, container engines' state and sockets), changed by `--hide PATH`
//! and `--expose PATH`, written as `linux.maskedPaths`.
//!
//! A masked directory is covered by an empty read-only tmpfs, a masked file
//! (or socket) by `/dev/null` (libcontainer's `masked_paths`, as runc): the
//! world sees the name but none of the content, and cannot write there.
//! Only paths that exist in the lower are listed, found when the world is
//! made (homes are enumerated then: `/root` and each `/home/*`).

use std::fs;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Result};

/// Host files that hold password hashes or host keys.
const HOST_SECRETS: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/security/opasswd",
    // Kubernetes' admin and kubelet credentials, cluster CA keys.
    "/etc/kubernetes",
];

/// Credentials and keys under a home directory.
const HOME_CREDENTIALS: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".config/gcloud",
    ".kube",
    ".docker/config.json",
    ".config/containers/auth.json",
    ".npmrc",
    ".pypirc",
    ".netrc",
    ".git-credentials",
    ".config/git/credentials",
    ".config/gh",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".gem/credentials",
    ".vault-token",
    ".password-store",
    ".local/share/keyrings",
    ".terraform.d/credentials.tfrc.json",
];

/// Substrate's default state dir and runtime root (the ones in use, when
/// they differ, are added by the caller).
const SUBSTRATE_DIRS: &[&str] = &["/var/lib/substrate", "/run/substrate"];

/// Container engines' state, and their sockets (a world that reaches one
/// could start a privileged container of its own).
const ENGINE_STATE: &[&str] = &[
    "/var/lib/containerd",
    "/run/containerd",
    "/var/lib/docker",
    "/run/docker",
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/var/lib/containers",
    "/run/containers",
    "/run/podman",
    "/run/crio",
    "/var/lib/kubelet",
    "/run/user",
];

/// `--hide` and `--expose`, as given.
#[derive(Clone, Debug, Default)]
pub struct HideArgs {
    pub hide: Vec<PathBuf>,
    pub expose: Vec<PathBuf>,
}

/// Where the world's paths are found, to see what exists.
pub struct Lower<'a> {
    /// The lower layer's root on the host (`/`, or a `--rootfs` dir).
    pub root: &'a Path,
    /// The world's working directory (a world path).
    pub cwd: &'a Path,
    /// The state dir and runtime root in use (host paths; they are in the
    /// world too when the lower is the host's `/`).
    pub substrate_dirs: Vec<PathBuf>,
    /// Whether the default hide-list applies (not to a user's bundle, whose
    /// spec says what it masks; `--hide` still adds to it).
    pub defaults: bool,
}

impl Lower<'_> {
    /// The host path of the world path `path`.
    fn host_path(&self, path: &Path) -> PathBuf {
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }

    fn exists(&self, path: &Path) -> bool {
        fs::symlink_metadata(self.host_path(path)).is_ok()
    }

    /// `/root` and each directory in `/home`: the homes of the lower.
    fn homes(&self) -> Vec<PathBuf> {
        let mut homes = Vec::new();
        if self.host_path(Path::new("/root")).is_dir() {
            homes.push(PathBuf::from("/root"));
        }
        if let Ok(entries) = fs::read_dir(self.host_path(Path::new("/home"))) {
            let mut users: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| Path::new("/home").join(e.file_name()))
                .collect();
            users.sort();
            homes.extend(users);
        }
        homes
    }

    /// The default hide-list of this lower: every entry that exists in it.
    pub fn default_hidden(&self) -> Vec<PathBuf> {
        if !self.defaults {
            return Vec::new();
        }
        let mut candidates: Vec<PathBuf> = HOST_SECRETS.iter().map(PathBuf::from).collect();
        candidates.extend(self.ssh_host_keys());
        let homes = self.homes();
        for home in &homes {
            candidates.extend(HOME_CREDENTIALS.iter().map(|c| home.join(c)));
        }
        // Every home but the one the world works in: an agent needs its
        // project, not the rest of its user's files, nor other users'.
        candidates.extend(homes.into_iter().filter(|h| !self.cwd.starts_with(h)));
        candidates.extend(SUBSTRATE_DIRS.iter().map(PathBuf::from));
        candidates.extend(self.substrate_dirs.iter().cloned());
        candidates.extend(ENGINE_STATE.iter().map(PathBuf::from));
        let mut hidden = Vec::new();
        for path in candidates {
            if self.exists(&path) && !hidden.contains(&path) {
                hidden.push(path);
            }
        }
        hidden
    }

    /// `/etc/ssh/ssh_host_*_key`: the host's private keys (not `.pub`).
    fn ssh_host_keys(&self) -> Vec<PathBuf> {
        let Ok(entries) = fs::read_dir(self.host_path(Path::new("/etc/ssh"))) else {
            return Vec::new();
        };
        let mut keys: Vec<PathBuf> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with("ssh_host_") && n.ends_with("_key"))
            .map(|n| Path::new("/etc/ssh").join(n))
            .collect();
        keys.sort();
        keys
    }

    /// The paths to mask: the default hide-list without `--expose`d
    /// entries, plus `--hide`. An `--expose` that is not on the default
    /// list, a relative path, or a hidden working directory is an error.
    pub fn hidden(&self, args: &HideArgs) -> Result<Vec<PathBuf>> {
        let mut hidden = self.default_hidden();
        for path in &args.expose {
            let path = absolute("--expose", path)?;
            let Some(at) = hidden.iter().position(|h| *h == path) else {
                let list: Vec<String> = self
                    .default_hidden()
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect();
                bail!(
                    "--expose {}: not hidden by default in this world (only entries of the default hide-list can be exposed; here they are: {})",
                    path.display(),
                    list.join(", ")
                );
            };
            hidden.remove(at);
        }
        for path in &args.hide {
            let path = absolute("--hide", path)?;
            if path == Path::new("/") {
                bail!("--hide /: the world needs its root (hide what is under it)");
            }
            if !hidden.contains(&path) {
                hidden.push(path);
            }
        }
        if let Some(over) = hidden.iter().find(|h| self.cwd.starts_with(h)) {
            let how = if args.hide.iter().any(|h| h == over) {
                format!("drop --hide {}", over.display())
            } else {
                format!("give --expose {}", over.display())
            };
            bail!(
                "the working directory {} would be hidden in the world (under {}): run from another directory, or {how}",
                self.cwd.display(),
                over.display()
            );
        }
        Ok(hidden)
    }
}

/// `path` as an absolute, normal path (no `.`, `..` or trailing `/`).
fn absolute(flag: &str, path: &Path) -> Result<PathBuf> {
    if !path.is_absolute() {
        bail!("{flag} {}: give an absolute path", path.display());
    }
    let mut normal = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => normal.push(part),
            Component::ParentDir | Component::Prefix(_) => {
                bail!("{flag} {}: give the path without `..`", path.display())
            }
        }
    }
    Ok(normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lower with two homes (`root`, `home/alice`, `home/bob`), shadow
    /// files, an ssh host key and some credentials.
    fn fixture() -> Fixture {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = Fixture(
            std::env::temp_dir().join(format!("substrate-cli-hide-{}-{n}", std::process::id())),
        );
        let root = dir.path();
        for d in [
            "etc/ssh",
            "root/.ssh",
            "root/.config/gcloud",
            "home/alice/project",
            "home/alice/.aws",
            "home/bob/.kube",
            "var/lib/containerd",
            "run",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        for f in [
            "etc/shadow",
            "etc/passwd",
            "etc/ssh/ssh_host_ed25519_key",
            "etc/ssh/ssh_host_ed25519_key.pub",
            "root/.npmrc",
            "home/alice/.netrc",
            "home/alice/.docker-not-config",
            "run/docker.sock",
        ] {
            fs::write(root.join(f), "secret").unwrap();
        }
        dir
    }

    struct Fixture(PathBuf);

    impl Fixture {
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn strings(paths: &[PathBuf]) -> Vec<&str> {
        paths.iter().map(|p| p.to_str().unwrap()).collect()
    }

    #[test]
    fn defaults_hide_what_exists_and_every_home_but_the_cwds() {
        let dir = fixture();
        let lower = Lower {
            root: dir.path(),
            cwd: Path::new("/home/alice/project"),
            substrate_dirs: vec!["/var/lib/containerd".into(), "/nowhere".into()],
            defaults: true,
        };
        assert_eq!(
            strings(&lower.default_hidden()),
            [
                "/etc/shadow",
                "/etc/ssh/ssh_host_ed25519_key",
                "/root/.ssh",
                "/root/.config/gcloud",
                "/root/.npmrc",
                "/home/alice/.aws",
                "/home/alice/.netrc",
                "/home/bob/.kube",
                "/root",
                "/home/bob",
                "/var/lib/containerd",
                "/run/docker.sock",
            ]
        );
    }

    #[test]
    fn expose_removes_only_default_entries_and_hide_adds() {
        let dir = fixture();
        let lower = Lower {
            root: dir.path(),
            cwd: Path::new("/"),
            substrate_dirs: Vec::new(),
            defaults: true,
        };
        let hidden = lower
            .hidden(&HideArgs {
                hide: vec!["/etc/passwd".into(), "/opt/x/".into()],
                expose: vec!["/home/bob/".into(), "/root/.npmrc".into()],
            })
            .unwrap();
        let hidden = strings(&hidden);
        assert!(!hidden.contains(&"/home/bob"));
        assert!(
            hidden.contains(&"/home/bob/.kube"),
            "its credentials stay hidden"
        );
        assert!(!hidden.contains(&"/root/.npmrc"));
        assert!(hidden.contains(&"/home/alice"), "cwd / is in no home");
        assert!(hidden.ends_with(&["/etc/passwd", "/opt/x"]));

        let e = lower
            .hidden(&HideArgs {
                expose: vec!["/etc/passwd".into()],
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--expose /etc/passwd: not hidden"), "{e}");
        assert!(e.contains("/etc/shadow"), "lists what is: {e}");
        for bad in ["relative", "/a/../b"] {
            let hide = HideArgs {
                hide: vec![bad.into()],
                ..Default::default()
            };
            assert!(lower.hidden(&hide).is_err(), "{bad}");
        }
        let root = HideArgs {
            hide: vec!["/".into()],
            ..Default::default()
        };
        assert!(lower.hidden(&root).is_err());
    }

    #[test]
    fn a_hidden_working_directory_is_an_error_that_says_how_out() {
        let dir = fixture();
        let lower = Lower {
            root: dir.path(),
            cwd: Path::new("/root/.ssh"),
            substrate_dirs: Vec::new(),
            defaults: true,
        };
        let e = lower.hidden(&HideArgs::default()).unwrap_err().to_string();
        assert!(e.contains("--expose /root/.ssh"), "{e}");
        let lower = Lower {
            cwd: Path::new("/home/alice/project"),
            ..lower
        };
        let e = lower
            .hidden(&HideArgs {
                hide: vec!["/home/alice".into()],
                ..Default::default()
            })
            .unwrap_err()
            .to_string();
        assert!(e.contains("drop --hide /home/alice"), "{e}");
    }
}
