//! Bad input gets a one-line error that names the problem, exit status 1,
//! and leaves nothing behind: no state dir, cgroup, mount or process.

use std::fs;

use substrate_tests::cgroup::{self, Cgroup, Version};
use substrate_tests::{assert_no_leftovers, unique_id, Bundle, Runtime};

/// A change to a bundle's config.json.
type Edit = Box<dyn Fn(&mut serde_json::Value)>;

/// A create that failed left nothing, not even a world record.
fn assert_never_existed(rt: &Runtime, id: &str) {
    assert_no_leftovers(rt.root(), id);
    assert!(
        !rt.world_dir(id).exists(),
        "a world that never ran has no record: {id}"
    );
}

fn assert_mentions(err: &str, words: &[&str]) {
    for word in words {
        assert!(err.contains(word), "error should mention {word:?}: {err}");
    }
}

#[test]
fn missing_bundle() {
    let rt = Runtime::new();
    let id = unique_id("nobundle");
    let err = rt.fails(&["create", "--bundle", "/nonexistent/bundle", &id]);
    assert_mentions(
        &err,
        &["bundle /nonexistent/bundle", "no such file or directory"],
    );
    assert_never_existed(&rt, &id);
}

#[test]
fn bundle_without_config() {
    let rt = Runtime::new();
    let id = unique_id("noconfig");
    let dir = tempfile::tempdir().unwrap();
    let err = rt.fails(&["create", "--bundle", dir.path().to_str().unwrap(), &id]);
    assert_mentions(&err, &["config.json", "no such file or directory"]);
    assert_never_existed(&rt, &id);
}

#[test]
fn malformed_config() {
    let rt = Runtime::new();
    for (i, text) in [
        "{\"ociVersion\": \"1.0.0\", \"process\": ",
        "not json at all",
        "{\"ociVersion\": \"1.0.0\", \"process\": {\"args\": \"sh\"}}",
    ]
    .iter()
    .enumerate()
    {
        let id = unique_id(&format!("malformed{i}"));
        let bundle = Bundle::new(&id, &["true"]);
        fs::write(bundle.path().join("config.json"), text).unwrap();
        let err = rt.fails(&["create", "--bundle", bundle.path_str(), &id]);
        assert_mentions(&err, &["config.json", "malformed", "line"]);
        assert_never_existed(&rt, &id);
    }
}

#[test]
fn config_the_runtime_cannot_honour() {
    let rt = Runtime::new();
    let cases: Vec<(&str, Edit, &[&str])> = vec![
        (
            "norootfs",
            Box::new(|c| c["root"]["path"] = "/nonexistent/rootfs".into()),
            &["root.path", "/nonexistent/rootfs"],
        ),
        (
            "version",
            Box::new(|c| c["ociVersion"] = "2.0.0".into()),
            &["ociVersion", "2.0.0"],
        ),
        (
            "noargs",
            Box::new(|c| c["process"]["args"] = serde_json::json!([])),
            &["process.args"],
        ),
        (
            "nspath",
            Box::new(|c| {
                c["linux"]["namespaces"] =
                    serde_json::json!([{"type": "network", "path": "/nonexistent/netns"}])
            }),
            &["namespaces", "/nonexistent/netns"],
        ),
        (
            "rlimit",
            // Above any hard limit this unprivileged-for-rlimits host has.
            Box::new(|c| {
                c["process"]["rlimits"] =
                    serde_json::json!([{"type": "RLIMIT_NOFILE", "hard": 1u64 << 40, "soft": 1024}])
            }),
            &["RLIMIT", "hard limit"],
        ),
        (
            "rdma",
            Box::new(|c| {
                c["linux"]["resources"]["rdma"] = serde_json::json!({"mlx5_1": {"hcaHandles": 3}})
            }),
            &["linux.resources.rdma"],
        ),
    ];
    for (name, edit, words) in cases {
        let id = unique_id(name);
        let mut bundle = Bundle::new(&id, &["true"]);
        bundle.edit(edit);
        let err = rt.fails(&["create", "--bundle", bundle.path_str(), &id]);
        assert_mentions(&err, words);
        assert_never_existed(&rt, &id);
    }
}

/// `linux.resources.unified` names cgroup v2 files: the OCI spec has a
/// runtime write them on a v2 host and refuse them on v1, where libcgroups
/// would drop them without a word.
#[test]
fn unified_resources_are_written_on_v2_and_refused_on_v1() {
    let rt = Runtime::new();
    let id = unique_id("unified");
    let mut bundle = Bundle::new(&id, &["sleep", "1000"]);
    bundle.edit(|c| {
        c["linux"]["resources"]["unified"] = serde_json::json!({"memory.high": "1048576"})
    });
    match cgroup::version() {
        Version::V1 => {
            let err = rt.fails(&["create", "--bundle", bundle.path_str(), &id]);
            assert_mentions(&err, &["linux.resources.unified", "v1"]);
            assert_never_existed(&rt, &id);
        }
        Version::V2 => {
            rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
            let high = Cgroup::of_world(&id).dir("memory").join("memory.high");
            assert_eq!(
                fs::read_to_string(&high).unwrap().trim(),
                "1048576",
                "{}",
                high.display()
            );
            rt.ok(&["delete", "--force", &id]);
            assert_no_leftovers(rt.root(), &id);
        }
    }
}

#[test]
fn failures_inside_container_setup_clean_up() {
    let rt = Runtime::new();
    // Each of these fails after libcontainer has made the state dir, the
    // cgroup and the container's processes.
    let cases: Vec<(&str, Edit)> = vec![
        (
            "noexe",
            Box::new(|c| c["process"]["args"] = serde_json::json!(["/no/such/binary"])),
        ),
        (
            "hook",
            Box::new(|c| {
                c["hooks"] = serde_json::json!({"createRuntime": [{"path": "/bin/false"}]})
            }),
        ),
        (
            "badmount",
            Box::new(|c| {
                c["mounts"].as_array_mut().unwrap().push(serde_json::json!({"destination": "/mnt", "type": "bind", "source": "/nonexistent/source", "options": ["bind"]}))
            }),
        ),
    ];
    for (name, edit) in cases {
        let id = unique_id(name);
        let mut bundle = Bundle::new(&id, &["true"]);
        bundle.edit(edit);
        let out = rt.run(&["create", "--bundle", bundle.path_str(), &id]);
        assert_eq!(out.status.code(), Some(1), "{name} must fail");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("cannot create container \"{id}\"")),
            "{name}: {stderr}"
        );
        assert_never_existed(&rt, &id);
    }
}

#[test]
fn unknown_id() {
    let rt = Runtime::new();
    let id = unique_id("ghost");
    for args in [
        vec!["state", &id],
        vec!["start", &id],
        vec!["kill", &id, "KILL"],
        vec!["delete", &id],
        vec!["exec", &id, "true"],
        vec!["pause", &id],
        vec!["resume", &id],
        vec!["ps", &id],
        vec!["update", "--memory", "1000000", &id],
        vec!["events", "--stats", &id],
    ] {
        let err = rt.fails(&args);
        assert_mentions(&err, &[&format!("container \"{id}\" does not exist")]);
    }
    // As runc: forcing the delete of what is not there is not an error.
    rt.ok(&["delete", "--force", &id]);
    assert_never_existed(&rt, &id);
}

#[test]
fn invalid_id() {
    let rt = Runtime::new();
    let bundle = Bundle::new("invalid", &["true"]);
    for id in ["a/b", "..", "has space"] {
        let err = rt.fails(&["create", "--bundle", bundle.path_str(), id]);
        assert_mentions(&err, &["invalid container id"]);
    }
    assert_eq!(fs::read_dir(rt.root()).unwrap().count(), 0);
}

#[test]
fn duplicate_id_leaves_the_first_world_alone() {
    let rt = Runtime::new();
    let id = unique_id("dup");
    let bundle = Bundle::new(&id, &["sleep", "1000"]);
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    let pid = rt.pid(&id);
    let err = rt.fails(&["create", "--bundle", bundle.path_str(), &id]);
    assert_mentions(&err, &[&format!("container \"{id}\" already exists")]);
    assert_eq!(rt.status(&id), "created");
    assert_eq!(rt.pid(&id), pid);
    rt.ok(&["start", &id]);
    assert_eq!(rt.status(&id), "running");
    rt.ok(&["delete", "--force", &id]);
    assert_no_leftovers(rt.root(), &id);
}

#[test]
fn bad_signal() {
    let rt = Runtime::new();
    let id = unique_id("badsig");
    let bundle = Bundle::new(&id, &["sleep", "1000"]);
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    rt.ok(&["start", &id]);
    for signal in ["NOPE", "99", "0", "SIG", "SIGNOPE"] {
        let err = rt.fails(&["kill", &id, signal]);
        assert_mentions(&err, &["invalid signal", &format!("{signal:?}")]);
    }
    assert_eq!(rt.status(&id), "running", "a bad signal changes nothing");
    rt.ok(&["delete", "--force", &id]);
    assert_no_leftovers(rt.root(), &id);
}

#[test]
fn bad_process_file() {
    let rt = Runtime::new();
    let id = unique_id("badproc");
    let bundle = Bundle::new(&id, &["sleep", "1000"]);
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    rt.ok(&["start", &id]);
    let before: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();

    let missing = bundle.path().join("missing.json");
    let err = rt.fails(&["exec", "--process", missing.to_str().unwrap(), &id]);
    assert_mentions(&err, &["process file", "missing.json", "no such file"]);

    let malformed = bundle.path().join("malformed.json");
    fs::write(&malformed, "{\"args\": [\"sh\"").unwrap();
    let err = rt.fails(&["exec", "--process", malformed.to_str().unwrap(), &id]);
    assert_mentions(&err, &["process file", "malformed.json", "malformed"]);

    let empty = bundle.path().join("empty.json");
    fs::write(
        &empty,
        r#"{"args": [], "cwd": "/", "user": {"uid": 0, "gid": 0}}"#,
    )
    .unwrap();
    let err = rt.fails(&["exec", "--process", empty.to_str().unwrap(), &id]);
    assert_mentions(&err, &["process file", "empty.json", "args"]);

    let after: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(before, after, "no process was started");
    rt.ok(&["delete", "--force", &id]);
    assert_no_leftovers(rt.root(), &id);
}
