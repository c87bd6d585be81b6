//! A policy's `filesystem.hidden`, `read_only` and `writable`, enforced by
//! the kernel as mounts in the world's spec (runtime/src/world/filesystem.rs):
//! hidden paths masked, read-only paths read-only with every mount below
//! them (and still executable), and with `writable` listed a read-only root
//! with each listed path bound read-write. For `substrate-cli run --policy`
//! worlds and for bundle worlds under the node's policy, which an inline
//! annotation can narrow but never widen; and a hostile rootfs's symbolic
//! links never lead a mount out of it.

use std::fs;
use std::path::Path;
use std::process::Command;

use substrate_tests::{assert_no_leftovers, base_bundles, unique_id, Bundle, Runtime};

/// Shell functions the worlds' scripts use: `rd PATH` prints
/// `read PATH: [CONTENT]` or `read PATH: failed ERROR`; `w PATH` appends a
/// line and prints `write PATH: ok` or `write PATH: ERROR` (the text of the
/// errno, `Read-only file system` for EROFS).
const HELPERS: &str = r#"
rd() { if c=$(cat "$1" 2>&1); then echo "read $1: [$c]"; else echo "read $1: failed ${c##*: }"; fi; }
w() { if r=$( (echo x >> "$1") 2>&1 ); then echo "write $1: ok"; else echo "write $1: ${r##*: }"; fi; }
"#;

const EROFS: &str = "Read-only file system";

/// The line the script printed for `what` (`read PATH` or `write PATH`).
fn line<'a>(out: &'a str, what: &str) -> &'a str {
    let prefix = format!("{what}: ");
    out.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {what:?} line in:\n{out}"))
}

fn write_policy(dir: &Path, text: &str) -> String {
    let path = dir.join("policy.yaml");
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// `substrate-cli run --policy POLICY -- sh -c SCRIPT` (the helpers
/// first): its stdout, asserted to succeed without saying that the
/// filesystem section is not enforced.
fn cli_run(runtime: &Runtime, policy: &str, script: &str) -> String {
    let id = unique_id("fs-policy");
    let out = runtime
        .cli(&[
            "run",
            "--name",
            &id,
            "--policy",
            policy,
            "--",
            "/bin/sh",
            "-c",
            &format!("{HELPERS}{script}"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        !stderr.contains("not enforced"),
        "hidden, read_only and writable are enforced: {stderr}"
    );
    stdout
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_owned()
}

#[test]
fn a_hidden_file_and_directory_are_empty_in_a_cli_world() {
    let runtime = Runtime::new();
    // Under /tmp, on the host's root filesystem: the default world's lower.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("secrets")).unwrap();
    fs::write(d.join("secrets/key"), "KEY").unwrap();
    fs::write(d.join("token"), "TOKEN").unwrap();
    fs::write(d.join("visible"), "VISIBLE").unwrap();
    let (secrets, token, visible) = (path(d, "secrets"), path(d, "token"), path(d, "visible"));
    let script = format!(
        "rd {token}; rd {secrets}/key; echo \"ls: [$(ls -A {secrets})]\"; rd {visible}; \
         w {secrets}/new"
    );
    let policy = write_policy(
        d,
        &format!("version: 1\nfilesystem:\n  hidden: [{secrets}, {token}]\n"),
    );
    let out = cli_run(&runtime, &policy, &script);
    assert!(!out.contains("TOKEN") && !out.contains("KEY"), "{out}");
    // A hidden file reads as /dev/null (or is refused outright).
    let token_line = line(&out, &format!("read {token}"));
    assert!(
        token_line == "[]" || token_line.starts_with("failed"),
        "{out}"
    );
    assert!(
        line(&out, &format!("read {secrets}/key")).starts_with("failed"),
        "{out}"
    );
    assert_eq!(line(&out, "ls"), "[]", "{out}");
    assert_eq!(line(&out, &format!("read {visible}")), "[VISIBLE]", "{out}");
    assert_eq!(line(&out, &format!("write {secrets}/new")), EROFS, "{out}");

    // The same policy observed: nothing is hidden.
    let observed = write_policy(
        d,
        &format!("version: 1\nmode: observe\nfilesystem:\n  hidden: [{secrets}, {token}]\n"),
    );
    let out = cli_run(&runtime, &observed, &script);
    assert_eq!(line(&out, &format!("read {token}")), "[TOKEN]", "{out}");
    assert_eq!(line(&out, &format!("read {secrets}/key")), "[KEY]", "{out}");
}

#[test]
fn a_read_only_path_reads_runs_and_refuses_writes_in_a_cli_world() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir_all(d.join("conf/sub")).unwrap();
    fs::write(d.join("conf/app.conf"), "CONF").unwrap();
    fs::write(d.join("conf/sub/deep"), "DEEP").unwrap();
    fs::write(d.join("other"), "OTHER").unwrap();
    let (conf, other) = (path(d, "conf"), path(d, "other"));
    let policy = write_policy(
        d,
        &format!("version: 1\nfilesystem:\n  read_only: [{conf}, /usr]\n"),
    );
    let out = cli_run(
        &runtime,
        &policy,
        &format!(
            "rd {conf}/app.conf; w {conf}/app.conf; w {conf}/new; w {conf}/sub/deep; w {other}; \
             /usr/bin/true; echo \"exec: $?\""
        ),
    );
    assert_eq!(
        line(&out, &format!("read {conf}/app.conf")),
        "[CONF]",
        "{out}"
    );
    for written in ["app.conf", "new", "sub/deep"] {
        assert_eq!(
            line(&out, &format!("write {conf}/{written}")),
            EROFS,
            "{out}"
        );
    }
    assert_eq!(line(&out, &format!("write {other}")), "ok", "{out}");
    // Read-only for writes only: what is there still runs.
    assert_eq!(line(&out, "exec"), "0", "{out}");
    // The world's writes went to its own upper layer.
    assert_eq!(fs::read_to_string(d.join("other")).unwrap(), "OTHER");
}

#[test]
fn with_writable_listed_only_the_listed_paths_take_writes_in_a_cli_world() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir_all(d.join("work/sub")).unwrap();
    fs::write(d.join("elsewhere"), "ELSEWHERE").unwrap();
    let (work, elsewhere) = (path(d, "work"), path(d, "elsewhere"));
    let policy = write_policy(
        d,
        &format!("version: 1\nfilesystem:\n  writable: [{work}]\n"),
    );
    let out = cli_run(
        &runtime,
        &policy,
        &format!(
            "w {work}/new; w {work}/sub/new; w {elsewhere}; w /etc/substrate-fs-test; \
             w /dev/null; w /dev/shm/x; rd {elsewhere}; rd {work}/new"
        ),
    );
    assert_eq!(line(&out, &format!("write {work}/new")), "ok", "{out}");
    assert_eq!(line(&out, &format!("write {work}/sub/new")), "ok", "{out}");
    assert_eq!(line(&out, &format!("write {elsewhere}")), EROFS, "{out}");
    assert_eq!(line(&out, "write /etc/substrate-fs-test"), EROFS, "{out}");
    // The spec's own filesystems keep working.
    assert_eq!(line(&out, "write /dev/null"), "ok", "{out}");
    assert_eq!(line(&out, "write /dev/shm/x"), "ok", "{out}");
    assert_eq!(
        line(&out, &format!("read {elsewhere}")),
        "[ELSEWHERE]",
        "{out}"
    );
    assert_eq!(line(&out, &format!("read {work}/new")), "[x]", "{out}");
    // Into the world's upper layer, not the host's directory.
    assert!(!d.join("work/new").exists());
    assert!(!Path::new("/etc/substrate-fs-test").exists());
}

#[test]
fn a_writable_path_that_does_not_exist_refuses_the_world_and_leaves_nothing() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("work")).unwrap();
    let missing = path(d, "missing");
    let policy = write_policy(
        d,
        &format!(
            "version: 1\nfilesystem:\n  writable: [{}, {missing}]\n",
            path(d, "work")
        ),
    );
    let id = unique_id("fs-policy-bad");
    let out = runtime
        .cli(&["run", "--name", &id, "--policy", &policy, "--", "true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "filesystem.writable[1]: {missing}: no such file or directory in the world's rootfs"
        )),
        "{stderr}"
    );
    assert!(!runtime.world_dir(&id).exists());
    assert_no_leftovers(runtime.root(), &id);
}

// --- bundle worlds, under the node's policy ---------------------------------

/// A copy of the busybox rootfs the test may change and write.
fn own_rootfs(dir: &Path) -> std::path::PathBuf {
    let rootfs = dir.join("rootfs");
    let status = Command::new("cp")
        .arg("-a")
        .arg(base_bundles().rootfs())
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(status.success());
    rootfs
}

/// A bundle running the helpers and `script` on `rootfs`, its root
/// writable (as a bundle's usually is).
fn bundle_on(id: &str, rootfs: &Path, script: &str) -> Bundle {
    let mut bundle = Bundle::new(id, &["sh", "-c", &format!("{HELPERS}{script}")]);
    bundle.edit(|c| {
        c["root"]["path"] = rootfs.to_str().unwrap().into();
        c["root"]["readonly"] = false.into();
    });
    bundle
}

fn node_policy(runtime: &Runtime, text: &str) {
    let config = runtime.config_dir();
    fs::create_dir_all(&config).unwrap();
    fs::write(config.join("policy.yaml"), text).unwrap();
}

/// `substrate-runtime run` of `bundle`: its stdout, asserted to succeed.
fn runtime_run(runtime: &Runtime, bundle: &Bundle, id: &str) -> String {
    let out = runtime.run(&["run", "--bundle", bundle.path_str(), id]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_leftovers(runtime.root(), id);
    stdout
}

#[test]
fn a_bundle_world_gets_the_node_policys_mounts() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let rootfs = own_rootfs(dir.path());
    fs::create_dir_all(rootfs.join("srv/secrets")).unwrap();
    fs::write(rootfs.join("srv/secrets/key"), "KEY").unwrap();
    fs::create_dir_all(rootfs.join("work")).unwrap();
    fs::create_dir_all(rootfs.join("var/cache")).unwrap();
    node_policy(
        &runtime,
        "version: 1\nfilesystem:\n  hidden: [/srv/secrets]\n  \
         read_only: [/etc, /var, /bin]\n  writable: [/work, /var/cache]\n",
    );
    let id = unique_id("fs-bundle");
    let mut bundle = bundle_on(
        &id,
        &rootfs,
        "rd /srv/secrets/key; echo \"ls: [$(ls -A /srv/secrets)]\"; rd /etc/hostname; \
         w /etc/hostname; w /var/tmp/x; w /var/cache/x; w /work/out; w /root/x; w /tmp/x; \
         /bin/true; echo \"exec: $?\"",
    );
    // A mount of the bundle's own below a read-only path.
    bundle.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/var/tmp",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777"]
        }))
    });
    let out = runtime_run(&runtime, &bundle, &id);
    assert!(!out.contains("KEY"), "{out}");
    assert!(
        line(&out, "read /srv/secrets/key").starts_with("failed"),
        "{out}"
    );
    assert_eq!(line(&out, "ls"), "[]", "{out}");
    assert_eq!(line(&out, "read /etc/hostname"), "[substrate]", "{out}");
    assert_eq!(line(&out, "write /etc/hostname"), EROFS, "{out}");
    // Read-only below too: the bundle's tmpfs under /var, and the
    // writable entry under it.
    assert_eq!(line(&out, "write /var/tmp/x"), EROFS, "{out}");
    assert_eq!(line(&out, "write /var/cache/x"), EROFS, "{out}");
    assert_eq!(line(&out, "write /work/out"), "ok", "{out}");
    assert_eq!(line(&out, "write /root/x"), EROFS, "{out}");
    // The spec's tmpfs /tmp is its own filesystem.
    assert_eq!(line(&out, "write /tmp/x"), "ok", "{out}");
    assert_eq!(line(&out, "exec"), "0", "{out}");
    // Written in place (runc's semantics): the listed path only.
    assert_eq!(fs::read_to_string(rootfs.join("work/out")).unwrap(), "x\n");
    assert!(!rootfs.join("root/x").exists());
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/hostname")).unwrap(),
        "substrate\n"
    );
}

#[test]
fn an_inline_annotation_adds_hidden_paths_but_cannot_remove_or_widen() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let rootfs = own_rootfs(dir.path());
    for name in ["a", "b"] {
        fs::create_dir_all(rootfs.join("srv").join(name)).unwrap();
        fs::write(
            rootfs.join("srv").join(name).join("key"),
            name.to_uppercase(),
        )
        .unwrap();
    }
    fs::create_dir_all(rootfs.join("work")).unwrap();
    node_policy(
        &runtime,
        "version: 1\nfilesystem:\n  hidden: [/srv/a]\n  writable: [/work]\n",
    );
    let script = "rd /srv/a/key; rd /srv/b/key; w /work/x; w /root/x";
    for (inline, b_hidden) in [
        // Adds /srv/b.
        ("version: 1\nfilesystem:\n  hidden: [/srv/b]\n", true),
        // Says nothing is hidden and everything writable: narrowing keeps
        // the node's hidden path and its writable list.
        (
            "version: 1\nfilesystem:\n  hidden: []\n  read_only: []\n  writable: [/]\n",
            false,
        ),
    ] {
        let id = unique_id("fs-inline");
        let mut bundle = bundle_on(&id, &rootfs, script);
        bundle.edit(|c| {
            c["annotations"] = serde_json::json!({ "io.substrate.policy.inline": inline });
        });
        let out = runtime_run(&runtime, &bundle, &id);
        assert!(
            line(&out, "read /srv/a/key").starts_with("failed"),
            "{inline}: {out}"
        );
        if b_hidden {
            assert!(
                line(&out, "read /srv/b/key").starts_with("failed"),
                "{inline}: {out}"
            );
        } else {
            assert_eq!(line(&out, "read /srv/b/key"), "[B]", "{inline}: {out}");
        }
        assert_eq!(line(&out, "write /work/x"), "ok", "{inline}: {out}");
        assert_eq!(line(&out, "write /root/x"), EROFS, "{inline}: {out}");
    }
    assert!(!rootfs.join("root/x").exists());
}

#[test]
fn a_hostile_rootfs_links_never_lead_a_mount_out_of_it() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    // The host's directory the image's links name.
    let host = tempfile::tempdir().unwrap();
    fs::write(host.path().join("secret"), "HOST").unwrap();
    let host_path = host.path().to_str().unwrap();
    let rootfs = own_rootfs(dir.path());
    std::os::unix::fs::symlink(host.path(), rootfs.join("ro")).unwrap();
    std::os::unix::fs::symlink("/inside", rootfs.join("ro2")).unwrap();
    std::os::unix::fs::symlink(host.path(), rootfs.join("w")).unwrap();
    fs::create_dir(rootfs.join("inside")).unwrap();
    fs::write(rootfs.join("inside/secret"), "INSIDE").unwrap();

    // read_only is made inside the world's root: a link there leads to
    // the world's own path of that name, here none; or to its own dir.
    node_policy(
        &runtime,
        "version: 1\nfilesystem:\n  read_only: [/ro, /ro2]\n",
    );
    let id = unique_id("fs-links");
    let bundle = bundle_on(
        &id,
        &rootfs,
        "rd /ro/secret; rd /ro2/secret; w /ro/secret; w /ro2/secret; \
         echo \"mounts [$(cat /proc/self/mountinfo)]\"",
    );
    let out = runtime_run(&runtime, &bundle, &id);
    assert!(!out.contains("HOST"), "{out}");
    assert!(
        !out.contains(host_path),
        "the host's directory is mounted: {out}"
    );
    assert!(line(&out, "read /ro/secret").starts_with("failed"), "{out}");
    assert_eq!(line(&out, "read /ro2/secret"), "[INSIDE]", "{out}");
    assert_eq!(line(&out, "write /ro2/secret"), EROFS, "{out}");
    assert_eq!(
        fs::read_to_string(host.path().join("secret")).unwrap(),
        "HOST"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("inside/secret")).unwrap(),
        "INSIDE"
    );

    // A writable bind's source is resolved on the host: a link on its
    // way refuses the world, and nothing of it is left.
    node_policy(&runtime, "version: 1\nfilesystem:\n  writable: [/w]\n");
    let id = unique_id("fs-links");
    let bundle = bundle_on(&id, &rootfs, "w /w/secret");
    let error = runtime.fails(&["create", "--bundle", bundle.path_str(), &id]);
    assert!(
        error.contains("filesystem.writable[0]: /w: a symbolic link in the world's rootfs"),
        "{error}"
    );
    assert!(!error.contains(host_path), "{error}");
    assert_no_leftovers(runtime.root(), &id);
    assert!(!runtime.world_dir(&id).exists());
    assert_eq!(
        fs::read_to_string(host.path().join("secret")).unwrap(),
        "HOST"
    );
}

#[test]
fn a_bundle_world_that_could_undo_the_mounts_is_refused_and_leaves_nothing() {
    let runtime = Runtime::new();
    node_policy(&runtime, "version: 1\nfilesystem:\n  hidden: [/srv]\n");
    for capability in ["CAP_SYS_ADMIN", "CAP_DAC_READ_SEARCH"] {
        let id = unique_id("fs-caps");
        let mut bundle = Bundle::new(&id, &["true"]);
        bundle.edit(|c| {
            for set in ["bounding", "permitted", "effective"] {
                c["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(capability.into());
            }
        });
        let error = runtime.fails(&["create", "--bundle", bundle.path_str(), &id]);
        assert!(
            error.contains(&format!("cannot hold {capability}")),
            "{error}"
        );
        assert_no_leftovers(runtime.root(), &id);
        assert!(!runtime.world_dir(&id).exists());
    }
}
