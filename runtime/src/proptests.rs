//! Property tests of the runtime's parsers of untrusted input: a bundle's
//! `config.json`, a process file's JSON, a resources file, the world record
//! and diff files, and from inside a world the span socket's hello messages
//! and the records of a ring handed over as a sealed memfd.
//!
//! Every property is `proptest_*` (`cargo test proptest_` runs them);
//! `PROPTEST_CASES` sets the cases (256 unless set; `make fuzz` sets it
//! higher). A case that runs past `PROPTEST_TIMEOUT` (20 s, `.cargo/config.toml`) fails with its input.

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{json, Value};
use substrate_ring::hello::{self, HelloKind, HelloWriter};
use substrate_ring::ring::{self, Record, RING_BYTES, SLOTS};
use substrate_trace::{Span, SpanId, SpanKind, Timestamp};

use crate::monitor::preload::{map_ring, parse_greeting, Connections, MappedRing, SpanSocket};
use crate::record::{UpperLayer, UpperOwner, WorldRecord, WorldSource};
use crate::{Bundle, ErrorKind, WorldId, WorldStore};

/// A directory for the files a case writes, made once per test: on a tmpfs
/// when there is one (a case's writes and fsyncs then cost no disk), so
/// that a million cases fit in the time `make fuzz` has.
fn scratch() -> PathBuf {
    thread_local! {
        static SCRATCH: tempfile::TempDir = tempfile::Builder::new()
            .prefix("substrate-proptest-")
            .tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("a temp dir");
    }
    SCRATCH.with(|dir| dir.path().to_owned())
}

/// A JSON value without floats, nested a little.
fn json_value(depth: u32) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(depth, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::from),
            btree_map("[a-zA-Z]{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A change to a JSON document: a value replaced, a key removed or added,
/// somewhere along a path of keys and indexes.
#[derive(Clone, Debug)]
enum Edit {
    Replace(Vec<prop::sample::Index>, Value),
    Remove(Vec<prop::sample::Index>),
    Insert(Vec<prop::sample::Index>, String, Value),
}

fn edit(keys: &'static [&'static str]) -> impl Strategy<Value = Edit> {
    let path = || vec(any::<prop::sample::Index>(), 0..4);
    let key = prop_oneof![
        proptest::sample::select(keys).prop_map(str::to_owned),
        "[a-zA-Z.]{0,12}"
    ];
    prop_oneof![
        (path(), json_value(2)).prop_map(|(p, v)| Edit::Replace(p, v)),
        path().prop_map(Edit::Remove),
        (path(), key, json_value(2)).prop_map(|(p, k, v)| Edit::Insert(p, k, v)),
    ]
}

/// The value a path of indexes leads to: each index picks a value of an
/// object or an element of an array, as far as there are any.
fn walk<'a>(value: &'a mut Value, path: &[prop::sample::Index]) -> &'a mut Value {
    let Some((first, rest)) = path.split_first() else {
        return value;
    };
    let has_child = match &*value {
        Value::Object(map) => !map.is_empty(),
        Value::Array(items) => !items.is_empty(),
        _ => false,
    };
    if !has_child {
        return value;
    }
    let child = match value {
        Value::Object(map) => {
            let n = map.len();
            map.values_mut().nth(first.index(n)).expect("within len")
        }
        Value::Array(items) => {
            let n = items.len();
            &mut items[first.index(n)]
        }
        _ => unreachable!("has a child"),
    };
    walk(child, rest)
}

fn apply_edits(doc: &mut Value, edits: &[Edit]) {
    for edit in edits {
        match edit {
            Edit::Replace(path, v) => *walk(doc, path) = v.clone(),
            Edit::Remove(path) => {
                if let Some((last, parent)) = path.split_last() {
                    match walk(doc, parent) {
                        Value::Object(map) if !map.is_empty() => {
                            let key = map
                                .keys()
                                .nth(last.index(map.len()))
                                .expect("within len")
                                .clone();
                            map.remove(&key);
                        }
                        Value::Array(items) if !items.is_empty() => {
                            let i = last.index(items.len());
                            items.remove(i);
                        }
                        _ => {}
                    }
                }
            }
            Edit::Insert(path, key, v) => {
                if let Value::Object(map) = walk(doc, path) {
                    map.insert(key.clone(), v.clone());
                }
            }
        }
    }
}

/// Keys of an OCI runtime config, so that edits land on fields the loader
/// reads.
const CONFIG_KEYS: &[&str] = &[
    "ociVersion",
    "process",
    "root",
    "path",
    "readonly",
    "args",
    "env",
    "cwd",
    "user",
    "uid",
    "gid",
    "rlimits",
    "type",
    "hard",
    "soft",
    "linux",
    "namespaces",
    "resources",
    "unified",
    "rdma",
    "devices",
    "annotations",
    "io.substrate.world.lower",
    "io.substrate.policy",
    "mounts",
    "destination",
    "source",
    "options",
    "hooks",
    "capabilities",
    "noNewPrivileges",
    "terminal",
];

/// A config that loads, in a bundle whose rootfs is `rootfs`.
fn valid_config() -> Value {
    json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", "true"],
            "env": ["PATH=/bin"],
            "cwd": "/",
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "substrate",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "mount"}],
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys"]
        }
    })
}

/// The bundle loader on `bytes` as `config.json`: a result, never a panic;
/// a refusal is the caller's mistake (`InvalidInput`) told on one line; an
/// accepted bundle has what the loader promises.
fn check_bundle(bytes: &[u8]) -> Result<Option<Bundle>, TestCaseError> {
    let dir = scratch().join("bundle");
    if !dir.exists() {
        fs::create_dir_all(dir.join("rootfs")).expect("mkdir rootfs");
    }
    fs::write(dir.join("config.json"), bytes).expect("write config.json");
    match Bundle::load(&dir, None) {
        Ok(bundle) => {
            prop_assert!(bundle.rootfs().is_dir());
            let process = bundle.spec.process().as_ref();
            prop_assert!(process.is_some_and(|p| p.args().as_ref().is_some_and(|a| !a.is_empty())));
            prop_assert!(bundle.spec.linux().is_some());
            // No bundle chooses the world's lower layer (a host directory).
            prop_assert!(!bundle
                .spec
                .annotations()
                .as_ref()
                .is_some_and(|a| a.contains_key("io.substrate.world.lower")));
            Ok(Some(bundle))
        }
        Err(e) => {
            prop_assert_eq!(e.kind(), ErrorKind::InvalidInput, "{}", e);
            let line = crate::one_line(&e);
            prop_assert!(!line.is_empty() && !line.contains('\n'), "{:?}", line);
            Ok(None)
        }
    }
}

/// Any record the model holds.
fn world_record() -> impl Strategy<Value = WorldRecord> {
    let path = || "/[a-z/]{0,16}";
    let time = || any::<i64>().prop_map(Timestamp::from_unix_nanos);
    (
        // Filters reject, and a million cases exhaust proptest's rejects: the
        // ids `.` and `..` become others instead.
        "[A-Za-z0-9_+.-]{1,16}".prop_map(|id| {
            if id == "." || id == ".." {
                format!("{id}x")
            } else {
                id
            }
        }),
        prop_oneof![
            path().prop_map(|p| WorldSource::Bundle { path: p.into() }),
            path().prop_map(|p| WorldSource::Rootfs { path: p.into() }),
            Just(WorldSource::Host),
        ],
        (
            path(),
            vec(path(), 0..3),
            path(),
            any::<bool>(),
            any::<bool>(),
        ),
        (
            vec(path(), 0..3),
            any::<bool>(),
            vec(".{0,8}", 0..3),
            vec(".{0,12}", 0..3),
        ),
        (
            time(),
            proptest::option::of(time()),
            proptest::option::of(time()),
        ),
        proptest::option::of(prop_oneof![
            any::<i32>().prop_map(crate::ExitStatus::Code),
            any::<i32>().prop_map(crate::ExitStatus::Signal),
        ]),
    )
        .prop_map(
            |(
                id,
                source,
                (root, lower, upper, adopted, kept),
                (mountpoints, preload, command, env),
                (created_at, started_at, ended_at),
                exit,
            )| {
                WorldRecord {
                    schema: crate::record::RECORD_SCHEMA.into(),
                    id: WorldId::new(id).expect("the strategy makes valid ids"),
                    source,
                    runtime_root: root.into(),
                    lower: lower.into_iter().map(Into::into).collect(),
                    upper: Some(UpperLayer {
                        path: upper.into(),
                        owner: if adopted {
                            UpperOwner::Adopted
                        } else {
                            UpperOwner::World
                        },
                        kept,
                    }),
                    mountpoints: mountpoints.into_iter().map(Into::into).collect(),
                    preload,
                    command,
                    env,
                    cwd: "/".into(),
                    created_at,
                    started_at,
                    ended_at,
                    exit,
                    diff: None,
                    limits_hit: Vec::new(),
                    network: Default::default(),
                    egress: None,
                    policy: None,
                    trace_chain: None,
                }
            },
        )
}

// --- the ring, as the monitor maps it --------------------------------------

/// A record field's bytes at its offset in the record.
fn put(record: &mut [u8], offset: usize, bytes: &[u8]) {
    record[offset..offset + bytes.len()].copy_from_slice(bytes);
}

/// One record as a world's process can write it: plausible fields (so that
/// some become spans) or any bytes at all.
#[derive(Clone, Debug)]
struct RawRecord(Vec<u8>);

fn sockaddr() -> impl Strategy<Value = Vec<u8>> {
    let family = |f: i32| (f as u16).to_ne_bytes().to_vec();
    prop_oneof![
        (any::<u16>(), any::<[u8; 4]>()).prop_map(move |(port, ip)| {
            let mut a = family(libc::AF_INET);
            a.extend_from_slice(&port.to_be_bytes());
            a.extend_from_slice(&ip);
            a.extend_from_slice(&[0; 8]);
            a
        }),
        (any::<u16>(), any::<[u8; 16]>()).prop_map(move |(port, ip)| {
            let mut a = family(libc::AF_INET6);
            a.extend_from_slice(&port.to_be_bytes());
            a.extend_from_slice(&[0; 4]);
            a.extend_from_slice(&ip);
            a.extend_from_slice(&[0; 4]);
            a
        }),
        vec(any::<u8>(), 0..40).prop_map(move |path| {
            let mut a = family(libc::AF_UNIX);
            a.extend(path);
            a
        }),
        vec(any::<u8>(), 0..30),
    ]
}

fn raw_record() -> impl Strategy<Value = RawRecord> {
    let size = std::mem::size_of::<Record>();
    let now = Timestamp::now().unix_nanos() as u64;
    let plausible = (
        (0u8..5, 0u8..18, any::<u8>(), any::<i32>()),
        prop_oneof![8 => now - 10_000_000_000..now + 10_000_000_000, 1 => any::<u64>()],
        prop_oneof![8 => 0u64..1_000_000, 1 => any::<u64>()],
        (
            any::<i64>(),
            any::<u32>(),
            any::<u32>(),
            any::<i32>(),
            any::<u32>(),
        ),
        prop_oneof![sockaddr(), vec(any::<u8>(), 0..ring::DATA_BYTES)],
        prop_oneof![
            vec(any::<u8>(), 0..ring::DATA_BYTES),
            // DNS answers: family byte then 16 address bytes.
            vec(
                (
                    prop_oneof![
                        Just(libc::AF_INET as u8),
                        Just(libc::AF_INET6 as u8),
                        any::<u8>()
                    ],
                    any::<[u8; 16]>()
                ),
                0..6
            )
            .prop_map(|answers| answers
                .into_iter()
                .flat_map(|(f, a)| std::iter::once(f).chain(a))
                .collect()),
        ],
        prop_oneof![Just(None), any::<(u16, u16)>().prop_map(Some)],
    )
        .prop_map(
            move |(
                (kind, op, truncated, errno),
                start_ns,
                duration_ns,
                (ret, arg0, arg1, dirfd, tid),
                a,
                b,
                lens,
            )| {
                let mut r = vec![0u8; size];
                put(&mut r, std::mem::offset_of!(Record, kind), &[kind]);
                put(&mut r, std::mem::offset_of!(Record, op), &[op]);
                put(
                    &mut r,
                    std::mem::offset_of!(Record, truncated),
                    &[truncated],
                );
                put(
                    &mut r,
                    std::mem::offset_of!(Record, errno),
                    &errno.to_ne_bytes(),
                );
                put(
                    &mut r,
                    std::mem::offset_of!(Record, start_ns),
                    &start_ns.to_ne_bytes(),
                );
                put(
                    &mut r,
                    std::mem::offset_of!(Record, duration_ns),
                    &duration_ns.to_ne_bytes(),
                );
                put(
                    &mut r,
                    std::mem::offset_of!(Record, ret),
                    &ret.to_ne_bytes(),
                );
                put(
                    &mut r,
                    std::mem::offset_of!(Record, arg0),
                    &arg0.to_ne_bytes(),
                );
                put(
                    &mut r,
                    std::mem::offset_of!(Record, arg1),
                    &arg1.to_ne_bytes(),
                );
                put(
                    &mut r,
                    std::mem::offset_of!(Record, dirfd),
                    &dirfd.to_ne_bytes(),
                );
                put(
                    &mut r,
                    std::mem::offset_of!(Record, tid),
                    &tid.to_ne_bytes(),
                );
                let data = std::mem::offset_of!(Record, data);
                let a_len = a.len();
                let b_len = b.len().min(ring::DATA_BYTES - a_len);
                put(&mut r, data, &a);
                put(&mut r, data + a_len, &b[..b_len]);
                let (a_len, b_len) = lens.unwrap_or((a_len as u16, b_len as u16));
                put(
                    &mut r,
                    std::mem::offset_of!(Record, a_len),
                    &a_len.to_ne_bytes(),
                );
                put(
                    &mut r,
                    std::mem::offset_of!(Record, b_len),
                    &b_len.to_ne_bytes(),
                );
                RawRecord(r)
            },
        );
    prop_oneof![
        4 => plausible,
        1 => vec(any::<u8>(), size).prop_map(RawRecord),
    ]
}

/// A ring's memfd: `header` at the start, `records` in slots 0.. marked
/// written for lap 0, sealed against shrinking as the preload seals it.
fn ring_memfd(header: &[u8], records: &[RawRecord], seal: bool, size: usize) -> OwnedFd {
    use rustix::fs::{fcntl_add_seals, ftruncate, memfd_create, MemfdFlags, SealFlags};
    let fd = memfd_create(
        "proptest-ring",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .expect("memfd_create");
    ftruncate(&fd, size as u64).expect("ftruncate");
    let file = fs::File::from(fd);
    file.write_all_at(header, 0).expect("write header");
    for (i, record) in records.iter().enumerate() {
        let slot = (ring::HEADER_BYTES + i * ring::SLOT_BYTES) as u64;
        file.write_all_at(&1u64.to_ne_bytes(), slot)
            .expect("write seq");
        file.write_all_at(&record.0, slot + 8)
            .expect("write record");
    }
    let fd = OwnedFd::from(file);
    if seal {
        fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW).expect("seal");
    }
    fd
}

fn ring_header(dropped: u64) -> Vec<u8> {
    let mut h = vec![0u8; ring::HEADER_BYTES];
    h[0..4].copy_from_slice(&ring::MAGIC.to_ne_bytes());
    h[4..8].copy_from_slice(&ring::VERSION.to_ne_bytes());
    h[8..12].copy_from_slice(&(SLOTS as u32).to_ne_bytes());
    h[12..16].copy_from_slice(&(ring::SLOT_BYTES as u32).to_ne_bytes());
    h[192..200].copy_from_slice(&dropped.to_ne_bytes());
    h
}

proptest! {

    #[test]
    fn proptest_bundle_load_on_any_bytes(bytes in vec(any::<u8>(), 0..1024)) {
        check_bundle(&bytes)?;
    }

    /// A valid config with fields removed, replaced, added: what a bundle
    /// can say, reaching the checks past the JSON parser.
    #[test]
    fn proptest_bundle_load_on_edited_configs(edits in vec(edit(CONFIG_KEYS), 0..6)) {
        let mut config = valid_config();
        apply_edits(&mut config, &edits);
        check_bundle(&serde_json::to_vec(&config).expect("JSON"))?;
    }

    /// A bundle naming the world's lower layer (the host's `/`, say) is
    /// refused, whatever else it says.
    #[test]
    fn proptest_bundle_cannot_choose_its_lower(
        edits in vec(edit(CONFIG_KEYS), 0..4),
        lower in prop_oneof![Just("/".to_owned()), "/[a-z]{0,8}"],
    ) {
        let mut config = valid_config();
        apply_edits(&mut config, &edits);
        if let Value::Object(map) = &mut config {
            let annotations = map.entry("annotations").or_insert_with(|| json!({}));
            if !annotations.is_object() {
                *annotations = json!({});
            }
            annotations["io.substrate.world.lower"] = lower.into();
        }
        prop_assert!(check_bundle(&serde_json::to_vec(&config).expect("JSON"))?.is_none());
    }

    /// The parse `exec --process FILE` makes of the file (an OCI `process`),
    /// on any bytes and on edited processes.
    #[test]
    fn proptest_process_file_json(
        bytes in vec(any::<u8>(), 0..512),
        edits in vec(edit(CONFIG_KEYS), 0..6),
    ) {
        let _ = serde_json::from_slice::<oci_spec::runtime::Process>(&bytes);
        let mut process = valid_config()["process"].clone();
        apply_edits(&mut process, &edits);
        let _ = serde_json::from_value::<oci_spec::runtime::Process>(process);
    }

    /// `update --resources FILE` (and the shim's Update) on any bytes.
    #[test]
    fn proptest_resources_file(
        bytes in vec(any::<u8>(), 0..512),
        edits in vec(edit(&["memory", "limit", "cpu", "shares", "quota", "period", "pids", "devices", "unified", "blockIO", "hugepageLimits"]), 0..6),
    ) {
        let path = Path::new("resources.json");
        if let Err(e) = crate::load_resources(path, Some(&bytes)) {
            prop_assert_eq!(e.kind(), ErrorKind::InvalidInput);
        }
        let mut doc = json!({"memory": {"limit": 1_000_000}, "cpu": {"shares": 512, "quota": 1000, "period": 100_000}, "pids": {"limit": 10}});
        apply_edits(&mut doc, &edits);
        let bytes = serde_json::to_vec(&doc).expect("JSON");
        if let Err(e) = crate::load_resources(path, Some(&bytes)) {
            prop_assert_eq!(e.kind(), ErrorKind::InvalidInput);
        }
    }

    /// `world.json` and `diff.json` as anyone with the state dir could have
    /// left them: read into an error, never a panic; and a record the
    /// runtime saves loads back the same.
    #[test]
    fn proptest_world_record_and_diff_files(
        record in world_record(),
        garbage in vec(any::<u8>(), 0..512),
        edits in vec(edit(&["schema", "id", "source", "kind", "path", "upper", "owner", "kept", "exit", "code", "signal", "created_at", "diff", "entries", "summary", "tree_hash", "change"]), 0..5),
    ) {
        let dir = scratch().join("store");
        fs::create_dir_all(&dir).expect("mkdir");
        let path = dir.join("world.json");
        record.save(&path).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back = WorldRecord::load(&path).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(
            serde_json::to_value(&back).expect("JSON"),
            serde_json::to_value(&record).expect("JSON")
        );

        let mut edited = serde_json::to_value(&record).expect("JSON");
        apply_edits(&mut edited, &edits);
        for bytes in [garbage.clone(), serde_json::to_vec(&edited).expect("JSON")] {
            fs::write(&path, &bytes).expect("write");
            if let Ok(loaded) = WorldRecord::load(&path) {
                // An id read from a file is checked as a new one is.
                prop_assert!(WorldId::new(loaded.id.as_str()).is_ok());
            }
        }

        // diff.json, read through the store as `substrate-cli diff` does.
        let store = WorldStore::new(&dir);
        let id = record.id.clone();
        fs::create_dir_all(store.world_dir(&id)).expect("mkdir");
        fs::write(store.record_path(&id), b"{}").expect("write");
        let diff = json!({"summary": {"added": 1, "changed": 0, "deleted": 0, "entries_kept": 1, "truncated": false, "tree_hash": "sha256:00"}, "entries": [{"path": "/a", "change": "A", "kind": "file", "size": 1}]});
        let mut diff_edited = diff;
        apply_edits(&mut diff_edited, &edits);
        for bytes in [garbage, serde_json::to_vec(&diff_edited).expect("JSON")] {
            fs::write(store.diff_path(&id), &bytes).expect("write");
            let _ = store.diff(&id);
        }
        // A million ids must not leave a million dirs.
        fs::remove_dir_all(store.world_dir(&id)).expect("rm the world dir");
    }

    /// The monitor's reading of a hello message: what `Hello::parse`
    /// accepts, owned; garbage refused by name.
    #[test]
    fn proptest_parse_greeting(
        bytes in vec(any::<u8>(), 0..256),
        exe in vec(any::<u8>(), 0..32),
        argv in vec(vec(1u8..=255, 0..16), 0..6),
        env in vec(vec(1u8..=255, 0..16), 0..6),
        patch in proptest::option::of((any::<prop::sample::Index>(), any::<u8>())),
    ) {
        if let Err(reason) = parse_greeting(&bytes) {
            prop_assert_eq!(reason, "garbage");
        }
        let mut buf = vec![0u8; hello::MAX_BYTES];
        let mut w = HelloWriter::new(&mut buf);
        w.exe_and_cwd(&exe, b"/");
        argv.iter().for_each(|a| w.arg(a));
        env.iter().for_each(|e| w.env(e));
        let mut msg = w.finish(HelloKind::Exec, 7, 9).to_vec();
        match patch {
            None => {
                let g = parse_greeting(&msg).map_err(TestCaseError::fail)?;
                prop_assert_eq!((g.kind, g.claimed_pid, g.time_ns), (HelloKind::Exec, 7, 9));
                prop_assert_eq!(g.exe, exe);
                prop_assert_eq!(g.argv, argv);
                prop_assert_eq!(g.env, env);
            }
            Some((at, byte)) => {
                let at = at.index(msg.len());
                msg[at] = byte;
                let _ = parse_greeting(&msg);
            }
        }
    }

    /// A ring a world's process hands over, holding whatever that process
    /// wrote: the monitor maps only a sealed memfd of the right size with
    /// the right header, and every record it drains becomes a span that
    /// writes and reads back as it is, or is refused by name.
    #[test]
    fn proptest_monitor_drains_any_ring(
        records in vec(raw_record(), 0..24),
        dropped in any::<u64>(),
        header_patch in proptest::option::of((0usize..16, any::<u8>())),
        seal in prop_oneof![9 => Just(true), 1 => Just(false)],
        short in prop_oneof![9 => Just(0usize), 1 => 1usize..4096],
        parent in proptest::option::of(any::<[u8; 10]>()),
    ) {
        let mut header = ring_header(dropped);
        let mut header_ok = true;
        if let Some((at, byte)) = header_patch {
            header_ok = header[at] == byte;
            header[at] = byte;
        }
        let fd = ring_memfd(&header, &records, seal, RING_BYTES - short);
        let mapping = match map_ring(&fd) {
            Ok(mapping) => {
                prop_assert!(seal && short == 0 && header_ok);
                mapping
            }
            Err(reason) => {
                prop_assert!(!seal || short > 0 || !header_ok, "{}", reason);
                prop_assert!(["ring_unsealed", "ring_too_small", "ring_bad_header", "ring_unmappable"].contains(&reason));
                return Ok(());
            }
        };
        let parent = parent.map(|random| SpanId::v7_from_parts(Timestamp::now(), random));
        let mut ring = MappedRing::new(mapping, 4242, Some(7), parent, 0);
        let mut spans = Vec::new();
        let mut refused = Vec::new();
        let lost = ring.drain("w-proptest", &mut |span| match span {
            Ok(span) => spans.push(span),
            Err(reason) => refused.push(reason),
        });
        prop_assert_eq!(lost, dropped);
        prop_assert_eq!(spans.len() + refused.len(), records.len());
        for reason in refused {
            prop_assert!(["bad_time", "bad_record"].contains(&reason), "{}", reason);
        }
        for span in spans {
            prop_assert!(matches!(span.kind(), SpanKind::File | SpanKind::Net | SpanKind::Dns));
            prop_assert_eq!(span.process.pid, Some(4242));
            prop_assert_eq!(span.process.world_pid, Some(7));
            prop_assert_eq!(span.parent_span_id, parent);
            let line = span.to_line().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let back = Span::from_line(line.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
            prop_assert_eq!(back, span);
        }
        // Drained: a second pass finds nothing new.
        let again = ring.drain("w-proptest", &mut |_| panic!("drained twice"));
        prop_assert_eq!(again, 0);
    }

    /// The span socket, as a world's process reaches it: any message, with
    /// or without an fd, arrives as it was sent (its sender told by the
    /// kernel), or is refused when empty, or flagged when oversized.
    #[test]
    fn proptest_span_socket_takes_any_message(
        bytes in prop_oneof![
            8 => vec(any::<u8>(), 0..512),
            1 => (hello::MAX_BYTES - 2..hello::MAX_BYTES + 64).prop_map(|n| vec![7u8; n]),
        ],
        with_fd in any::<bool>(),
    ) {
        use nix::sys::socket::{self, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr};
        use std::os::fd::AsRawFd;
        let dir = scratch().join("socket");
        fs::create_dir_all(&dir).expect("mkdir");
        let span_socket = SpanSocket::bind(&dir).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let client = socket::socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None)
            .expect("socket");
        let path = dir.join(substrate_ring::SOCKET_NAME);
        socket::connect(client.as_raw_fd(), &UnixAddr::new(&path).expect("a short path")).expect("connect");
        let memfd = rustix::fs::memfd_create("proptest-fd", rustix::fs::MemfdFlags::CLOEXEC).expect("memfd");
        let fds = [memfd.as_raw_fd()];
        let rights = [ControlMessage::ScmRights(&fds)];
        let cmsgs: &[ControlMessage] = if with_fd { &rights } else { &[] };
        socket::sendmsg::<()>(client.as_raw_fd(), &[std::io::IoSlice::new(&bytes)], cmsgs, MsgFlags::empty(), None)
            .expect("sendmsg");

        let mut connections = Connections::default();
        prop_assert_eq!(connections.accept(&span_socket), 0);
        let (arrivals, refused) = connections.read(None);
        if bytes.is_empty() {
            prop_assert!(arrivals.is_empty());
            prop_assert_eq!(refused, 1);
            return Ok(());
        }
        prop_assert_eq!(refused, 0);
        prop_assert_eq!(arrivals.len(), 1);
        let arrival = &arrivals[0];
        prop_assert_eq!(arrival.peer_pid, std::process::id() as i32);
        prop_assert_eq!(arrival.fd.is_some(), with_fd);
        if bytes.len() > hello::MAX_BYTES {
            prop_assert!(arrival.oversized && arrival.bytes.is_empty());
        } else {
            prop_assert!(!arrival.oversized);
            prop_assert_eq!(&arrival.bytes, &bytes);
        }
    }
}
