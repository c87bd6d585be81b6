//! `substrate_fsdiff` against real overlayfs mounts on this kernel:
//! each test builds a lower tree, mounts an overlay over it (default options,
//! and `metacopy=on` / `redirect_dir=on` where they change what the upper
//! layer holds), changes files through the merged dir, unmounts, and checks
//! the exact entries `diff_upper` reads from the upper dir.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use sha2::{Digest, Sha256};
use substrate_fsdiff::{diff_upper, Change, DiffEntry, DiffOptions, FsDiff, Kind};
use tempfile::TempDir;

// ---------------------------------------------------------------- helpers

/// Mount options every case runs under: the default, and metadata-only
/// copy-up (which needs, and turns on, redirect_dir).
const CONFIGS: [&str; 2] = ["", "metacopy=on,redirect_dir=on"];

/// `lower/`, `upper/`, `work/`, `merged/` in a temp dir of its own; the
/// overlay is unmounted when the value drops, even on a failed assertion.
struct Overlay {
    tmp: TempDir,
    lowers: Vec<PathBuf>,
    mounted: bool,
}

impl Overlay {
    fn new() -> Self {
        Self::with_lowers(1)
    }

    /// `n` lower dirs, `lower0` (top-most) ... `lower{n-1}`; `lower()` is the first.
    fn with_lowers(n: usize) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("substrate-fsdiff-")
            .tempdir()
            .unwrap();
        let lowers: Vec<PathBuf> = (0..n)
            .map(|i| tmp.path().join(format!("lower{i}")))
            .collect();
        for dir in lowers
            .iter()
            .cloned()
            .chain(["upper", "work", "merged"].map(|d| tmp.path().join(d)))
        {
            fs::create_dir(&dir).unwrap();
        }
        Overlay {
            tmp,
            lowers,
            mounted: false,
        }
    }

    fn lower(&self) -> &Path {
        &self.lowers[0]
    }
    fn upper(&self) -> PathBuf {
        self.tmp.path().join("upper")
    }
    fn merged(&self) -> PathBuf {
        self.tmp.path().join("merged")
    }

    fn mount(&mut self, extra: &str) {
        let lowerdir: Vec<String> = self
            .lowers
            .iter()
            .map(|l| l.display().to_string())
            .collect();
        let mut data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowerdir.join(":"),
            self.upper().display(),
            self.tmp.path().join("work").display()
        );
        if !extra.is_empty() {
            data = format!("{data},{extra}");
        }
        mount(
            Some("overlay"),
            &self.merged(),
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .unwrap_or_else(|e| panic!("mount -t overlay -o {data}: {e}"));
        self.mounted = true;
    }

    fn unmount(&mut self) {
        if self.mounted {
            // Another test thread forking at the wrong moment holds our fds
            // (CLOEXEC ones too) until its child execs: EBUSY for a moment.
            let mut tries = 0;
            loop {
                match umount2(&self.merged(), MntFlags::empty()) {
                    Err(nix::errno::Errno::EBUSY) if tries < 50 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    result => break result.unwrap(),
                }
            }
            self.mounted = false;
        }
    }

    /// Unmounts and diffs with `options`.
    fn diff_with(&mut self, options: &DiffOptions) -> FsDiff {
        self.unmount();
        let diff = diff_upper(&self.upper(), &self.lowers, options).unwrap();
        // Whatever else, a diff survives JSON unchanged.
        let json = serde_json::to_string(&diff).unwrap();
        let back: FsDiff = serde_json::from_str(&json).unwrap();
        assert_eq!(back, diff);
        diff
    }

    fn diff(&mut self) -> FsDiff {
        self.diff_with(&DiffOptions::default())
    }

    /// Runs a shell command in the merged dir.
    fn sh(&self, script: &str) {
        let out = Command::new("sh")
            .arg("-ec")
            .arg(script)
            .current_dir(self.merged())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if self.mounted {
            let _ = umount2(&self.merged(), MntFlags::MNT_DETACH);
        }
    }
}

/// Writes `content` at `root/rel`, making parents.
fn put(root: &Path, rel: &str, content: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn sha(content: &[u8]) -> String {
    let digest = Sha256::digest(content);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// One line per entry: letter, path, kind, and `meta` when metadata-only.
fn show(diff: &FsDiff) -> Vec<String> {
    diff.entries
        .iter()
        .map(|e| {
            let kind = serde_json::to_value(e.kind).unwrap();
            let mut line = format!(
                "{} {} {}",
                e.change.letter(),
                e.path,
                kind.as_str().unwrap()
            );
            if e.metadata_only {
                line.push_str(" meta");
            }
            line
        })
        .collect()
}

fn entry<'a>(diff: &'a FsDiff, path: &str) -> &'a DiffEntry {
    diff.entries
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("no entry {path} in {:#?}", show(diff)))
}

fn has_xattr(path: &Path, name: &str) -> bool {
    let mut buf = [0u8; 256];
    rustix::fs::lgetxattr(path, name, &mut buf[..]).is_ok()
}

fn assert_totals(diff: &FsDiff, added: u64, changed: u64, deleted: u64) {
    let s = &diff.summary;
    assert_eq!(
        (s.added, s.changed, s.deleted),
        (added, changed, deleted),
        "{:#?}",
        show(diff)
    );
}

// ---------------------------------------------------------------- content

#[test]
fn create_overwrite_append() {
    for config in CONFIGS {
        let mut ov = Overlay::new();
        put(ov.lower(), "etc/motd", b"hello\n");
        put(ov.lower(), "var/log/app.log", b"line 1\n");
        put(ov.lower(), "usr/bin/tool", b"#!/bin/sh\n");
        ov.mount(config);
        ov.sh("echo new > new.txt; echo bye > etc/motd; echo 'line 2' >> var/log/app.log; cat usr/bin/tool >/dev/null");
        let diff = ov.diff();

        assert_eq!(
            show(&diff),
            [
                "C /etc/motd file",
                "A /new.txt file",
                "C /var/log/app.log file",
            ],
            "{config}"
        );
        assert_totals(&diff, 1, 2, 0);
        let new = entry(&diff, "/new.txt");
        assert_eq!(new.size, Some(4));
        assert_eq!(new.sha256.as_deref(), Some(sha(b"new\n").as_str()));
        assert_eq!(new.mode, 0o644);
        assert_eq!((new.uid, new.gid), (0, 0));
        assert!(new.before.is_none());
        let motd = entry(&diff, "/etc/motd");
        assert_eq!(motd.sha256.as_deref(), Some(sha(b"bye\n").as_str()));
        assert_eq!(motd.before.as_ref().unwrap().size, Some(6));
        let log = entry(&diff, "/var/log/app.log");
        assert_eq!(
            log.sha256.as_deref(),
            Some(sha(b"line 1\nline 2\n").as_str())
        );
        assert_eq!(log.size, Some(14));
        assert_eq!(
            diff.docker_lines().collect::<Vec<_>>(),
            ["C /etc/motd", "A /new.txt", "C /var/log/app.log"]
        );
        assert!(diff.summary.tree_hash.starts_with("sha256:"));
        assert!(!diff.summary.truncated);
        assert_eq!(diff.summary.entries_kept, 3);
    }
}

#[test]
fn chmod_chown_touch_are_metadata_only() {
    for config in CONFIGS {
        let mut ov = Overlay::new();
        put(ov.lower(), "bin/tool", b"#!/bin/sh\necho tool\n");
        put(ov.lower(), "etc/owned", b"owned\n");
        put(ov.lower(), "etc/touched", b"touched\n");
        fs::create_dir_all(ov.lower().join("srv/data")).unwrap();
        symlink("/etc/owned", ov.lower().join("etc/link")).unwrap();
        ov.mount(config);
        let m = ov.merged();
        fs::set_permissions(m.join("bin/tool"), fs::Permissions::from_mode(0o4755)).unwrap();
        std::os::unix::fs::chown(m.join("etc/owned"), Some(1000), Some(1000)).unwrap();
        std::os::unix::fs::lchown(m.join("etc/link"), Some(1001), Some(1001)).unwrap();
        ov.sh("touch -d '2001-02-03 04:05:06' etc/touched; chmod 700 srv/data");
        if config.contains("metacopy") {
            assert!(
                has_xattr(&ov.upper().join("bin/tool"), "trusted.overlay.metacopy"),
                "chmod under metacopy=on copies up metadata only"
            );
        }
        let diff = ov.diff();

        assert_eq!(
            show(&diff),
            [
                "C /bin/tool file meta",
                "C /etc/link symlink meta",
                "C /etc/owned file meta",
                "C /etc/touched file meta",
                "C /srv/data dir meta",
            ],
            "{config}"
        );
        let tool = entry(&diff, "/bin/tool");
        assert_eq!(tool.mode, 0o4755);
        assert_eq!(tool.before.as_ref().unwrap().mode, 0o644);
        assert_eq!(
            tool.sha256.as_deref(),
            Some(sha(b"#!/bin/sh\necho tool\n").as_str())
        );
        assert_eq!(tool.size, Some(20));
        let owned = entry(&diff, "/etc/owned");
        assert_eq!((owned.uid, owned.gid), (1000, 1000));
        assert_eq!(owned.sha256.as_deref(), Some(sha(b"owned\n").as_str()));
        let link = entry(&diff, "/etc/link");
        assert_eq!((link.uid, link.gid), (1001, 1001));
        assert_eq!(link.target.as_deref(), Some("/etc/owned"));
        assert_eq!(entry(&diff, "/srv/data").mode, 0o700);
    }
}

#[test]
fn copy_up_without_change_is_no_entry() {
    for config in CONFIGS {
        let mut ov = Overlay::new();
        put(ov.lower(), "etc/motd", b"hello\n");
        ov.mount(config);
        // Opening for writing copies the file up; nothing visible changes.
        drop(
            fs::OpenOptions::new()
                .write(true)
                .open(ov.merged().join("etc/motd"))
                .unwrap(),
        );
        assert!(ov.upper().join("etc/motd").exists(), "copied up");
        let diff = ov.diff();
        assert_eq!(show(&diff), Vec::<String>::new(), "{config}");
    }
}

#[test]
fn deleted_file_and_directory_tree() {
    for config in CONFIGS {
        let mut ov = Overlay::new();
        put(ov.lower(), "etc/motd", b"hello\n");
        put(ov.lower(), "usr/share/doc/a/README", b"a\n");
        put(ov.lower(), "usr/share/doc/b/README", b"b\n");
        put(ov.lower(), "usr/share/keep", b"keep\n");
        ov.mount(config);
        ov.sh("rm etc/motd; rm -r usr/share/doc");
        let diff = ov.diff();
        assert_eq!(
            show(&diff),
            ["D /etc/motd file", "D /usr/share/doc dir"],
            "{config}"
        );
        assert_totals(&diff, 0, 0, 2);
        let motd = entry(&diff, "/etc/motd");
        assert_eq!(motd.size, Some(6));
        assert!(motd.sha256.is_none(), "deleted content is not read");
    }
}

#[test]
fn directory_replaced_by_file_and_back() {
    for config in CONFIGS {
        // dir -> file
        let mut ov = Overlay::new();
        put(ov.lower(), "x/one", b"1");
        put(ov.lower(), "x/two", b"2");
        ov.mount(config);
        ov.sh("rm -r x; echo file > x");
        let diff = ov.diff();
        assert_eq!(show(&diff), ["C /x file"], "{config}");
        assert_eq!(entry(&diff, "/x").before.as_ref().unwrap().kind, Kind::Dir);
        assert_eq!(
            entry(&diff, "/x").sha256.as_deref(),
            Some(sha(b"file\n").as_str())
        );

        // file -> dir
        let mut ov = Overlay::new();
        put(ov.lower(), "y", b"was a file\n");
        ov.mount(config);
        ov.sh("rm y; mkdir y; echo z > y/z");
        let diff = ov.diff();
        assert_eq!(show(&diff), ["C /y dir", "A /y/z file"], "{config}");
        assert_eq!(entry(&diff, "/y").before.as_ref().unwrap().kind, Kind::File);

        // dir -> file -> dir: what the old dir held and the new one lacks is gone
        let mut ov = Overlay::new();
        put(ov.lower(), "x/one", b"1");
        put(ov.lower(), "x/two", b"2");
        ov.mount(config);
        ov.sh("rm -r x; echo file > x; rm x; mkdir x; echo 1 > x/one; echo new > x/new");
        let diff = ov.diff();
        assert_eq!(
            show(&diff),
            [
                "C /x dir",
                "A /x/new file",
                "C /x/one file",
                "D /x/two file"
            ],
            "{config}"
        );
    }
}

#[test]
fn symlinks() {
    for config in CONFIGS {
        let mut ov = Overlay::new();
        put(ov.lower(), "etc/motd", b"hello\n");
        symlink("motd", ov.lower().join("etc/alias")).unwrap();
        ov.mount(config);
        ov.sh("ln -s /etc/motd link; ln -sfn /nowhere etc/alias; ln -s ../../escape etc/dangling");
        let diff = ov.diff();
        assert_eq!(
            show(&diff),
            [
                "C /etc/alias symlink",
                "A /etc/dangling symlink",
                "A /link symlink"
            ],
            "{config}"
        );
        assert_eq!(entry(&diff, "/link").target.as_deref(), Some("/etc/motd"));
        assert_eq!(
            entry(&diff, "/etc/alias").target.as_deref(),
            Some("/nowhere")
        );
        assert_eq!(
            entry(&diff, "/etc/dangling").target.as_deref(),
            Some("../../escape")
        );
        assert!(entry(&diff, "/link").sha256.is_none());
    }
}

#[test]
fn hard_links() {
    for config in CONFIGS {
        let mut ov = Overlay::new();
        put(ov.lower(), "etc/motd", b"hello\n");
        ov.mount(config);
        // New file linked; lower file linked (copied up first).
        ov.sh("echo a > a; ln a b; mkdir d; ln a d/c; ln etc/motd motd2");
        let diff = ov.diff();
        assert_eq!(
            show(&diff),
            [
                "A /a file",
                "A /b file",
                "A /d dir",
                "A /d/c file",
                "C /etc/motd file meta",
                "A /motd2 file",
            ],
            "{config}"
        );
        assert_eq!(entry(&diff, "/a").hard_link, None);
        assert_eq!(entry(&diff, "/b").hard_link.as_deref(), Some("/a"));
        assert_eq!(entry(&diff, "/d/c").hard_link.as_deref(), Some("/a"));
        assert_eq!(entry(&diff, "/etc/motd").hard_link, None);
        let motd2 = entry(&diff, "/motd2");
        assert_eq!(motd2.hard_link.as_deref(), Some("/etc/motd"));
        assert_eq!(motd2.sha256.as_deref(), Some(sha(b"hello\n").as_str()));
    }
}

#[test]
fn renamed_file() {
    for config in CONFIGS {
        let mut ov = Overlay::new();
        put(ov.lower(), "etc/motd", b"hello\n");
        ov.mount(config);
        ov.sh("mv etc/motd etc/motd.old; echo n > new; mv new new2");
        let diff = ov.diff();
        assert_eq!(
            show(&diff),
            ["D /etc/motd file", "A /etc/motd.old file", "A /new2 file"],
            "{config}"
        );
        // Under metacopy the renamed file's data stays in the lower layer,
        // reached through its redirect: the hash is still the content's.
        assert_eq!(
            entry(&diff, "/etc/motd.old").sha256.as_deref(),
            Some(sha(b"hello\n").as_str())
        );
    }
}

#[test]
fn renamed_directory() {
    // redirect_dir=on: the dir moves without its content.
    let mut ov = Overlay::new();
    put(ov.lower(), "srv/app/bin/run", b"run\n");
    put(ov.lower(), "srv/app/conf", b"conf\n");
    ov.mount("redirect_dir=on");
    ov.sh("mv srv/app srv/app2; echo x > srv/app2/added");
    assert!(has_xattr(
        &ov.upper().join("srv/app2"),
        "trusted.overlay.redirect"
    ));
    let diff = ov.diff();
    assert_eq!(
        show(&diff),
        [
            "D /srv/app dir",
            "A /srv/app2 dir",
            "A /srv/app2/added file"
        ]
    );
    assert_eq!(
        entry(&diff, "/srv/app2").renamed_from.as_deref(),
        Some("/srv/app")
    );

    // With metacopy, a chmod inside the renamed dir copies up metadata only:
    // the data is found through the dir's redirect, and hashed.
    let mut ov = Overlay::new();
    put(ov.lower(), "srv/app/conf", b"conf\n");
    put(ov.lower(), "srv/app/sub/deep", b"deep\n");
    ov.mount("metacopy=on,redirect_dir=on");
    ov.sh("mkdir srv/new; mv srv/app srv/new/app; chmod 600 srv/new/app/conf srv/new/app/sub/deep");
    assert!(has_xattr(
        &ov.upper().join("srv/new/app/conf"),
        "trusted.overlay.metacopy"
    ));
    let diff = ov.diff();
    assert_eq!(
        show(&diff),
        [
            "D /srv/app dir",
            "A /srv/new dir",
            "A /srv/new/app dir",
            "A /srv/new/app/conf file",
            "A /srv/new/app/sub dir",
            "A /srv/new/app/sub/deep file",
        ]
    );
    assert_eq!(
        entry(&diff, "/srv/new/app").renamed_from.as_deref(),
        Some("/srv/app")
    );
    assert_eq!(
        entry(&diff, "/srv/new/app/conf").sha256.as_deref(),
        Some(sha(b"conf\n").as_str())
    );
    assert_eq!(
        entry(&diff, "/srv/new/app/sub/deep").sha256.as_deref(),
        Some(sha(b"deep\n").as_str())
    );

    // Without redirect_dir, mv copies the tree: every new path is listed.
    let mut ov = Overlay::new();
    put(ov.lower(), "srv/app/bin/run", b"run\n");
    put(ov.lower(), "srv/app/conf", b"conf\n");
    ov.mount("redirect_dir=off");
    ov.sh("mv srv/app srv/app2");
    let diff = ov.diff();
    assert_eq!(
        show(&diff),
        [
            "D /srv/app dir",
            "A /srv/app2 dir",
            "A /srv/app2/bin dir",
            "A /srv/app2/bin/run file",
            "A /srv/app2/conf file",
        ]
    );
    assert!(entry(&diff, "/srv/app2").renamed_from.is_none());
}

#[test]
fn fifo_socket_and_device() {
    for config in CONFIGS {
        let mut ov = Overlay::new();
        fs::create_dir_all(ov.lower().join("dev")).unwrap();
        ov.mount(config);
        ov.sh("mkfifo run.fifo; mknod dev/null2 c 1 3; mknod dev/loop9 b 7 9");
        drop(std::os::unix::net::UnixListener::bind(ov.merged().join("sock")).unwrap());
        let diff = ov.diff();
        assert_eq!(
            show(&diff),
            [
                "A /dev/loop9 block_device",
                "A /dev/null2 char_device",
                "A /run.fifo fifo",
                "A /sock socket",
            ],
            "{config}"
        );
        let null = entry(&diff, "/dev/null2").device.unwrap();
        assert_eq!((null.major, null.minor), (1, 3));
        let loop9 = entry(&diff, "/dev/loop9").device.unwrap();
        assert_eq!((loop9.major, loop9.minor), (7, 9));
        assert!(entry(&diff, "/run.fifo").sha256.is_none());
        assert!(entry(&diff, "/run.fifo").size.is_none());
    }
}

/// The bytes `diff_upper(upper, [lower])` reads, once per `hash_max_bytes`
/// in `limits`, as the kernel counts them: measured by `diff-rchar`, in a
/// process of its own (/proc/self/io counts a whole process, and this one
/// runs other tests' diffs at the same time).
fn bytes_read_by_diffs(upper: &Path, lower: &Path, limits: &[u64]) -> Vec<u64> {
    let out = Command::new(env!("CARGO_BIN_EXE_diff-rchar"))
        .arg(upper)
        .arg(lower)
        .args(limits.iter().map(u64::to_string))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Vec<u64> = stdout.lines().map(|n| n.parse().unwrap()).collect();
    assert_eq!(read.len(), limits.len(), "{stdout}");
    read
}

#[test]
fn large_sparse_file_is_not_read() {
    let mut ov = Overlay::new();
    put(ov.lower(), "big.lower", b"small\n");
    // Only in the lower: 10 GiB that the diff has no business reading.
    fs::File::create(ov.lower().join("huge"))
        .unwrap()
        .set_len(10 << 30)
        .unwrap();
    ov.mount("");
    ov.sh("truncate -s 10G big; truncate -s 20M medium; echo tiny > tiny");
    let diff = ov.diff();
    assert_eq!(
        show(&diff),
        ["A /big file", "A /medium file", "A /tiny file"]
    );
    let big = entry(&diff, "/big");
    assert_eq!(big.size, Some(10 << 30));
    assert!(big.sha256.is_none(), "above hash_max_bytes: not hashed");
    assert!(entry(&diff, "/medium").sha256.is_none(), "20 MiB > 16 MiB");
    assert!(entry(&diff, "/tiny").sha256.is_some());

    // hash_max_bytes 0: nothing is hashed; a raised limit hashes the 20 MiB.
    let never = DiffOptions {
        hash_max_bytes: 0,
        ..Default::default()
    };
    let diff = diff_upper(&ov.upper(), &[ov.lower().to_path_buf()], &never).unwrap();
    assert!(diff.entries.iter().all(|e| e.sha256.is_none()));
    let more = DiffOptions {
        hash_max_bytes: 32 << 20,
        ..Default::default()
    };
    let diff = diff_upper(&ov.upper(), &[ov.lower().to_path_buf()], &more).unwrap();
    assert_eq!(
        entry(&diff, "/medium").sha256.as_deref(),
        Some(sha(&vec![0; 20 << 20]).as_str())
    );

    // What those diffs read: the files they hash, byte for byte, and
    // nothing else; neither 10 GiB file, in the upper or the lower.
    let default = DiffOptions::default().hash_max_bytes;
    let read = bytes_read_by_diffs(
        &ov.upper(),
        ov.lower(),
        &[never.hash_max_bytes, default, more.hash_max_bytes],
    );
    let tiny = b"tiny\n".len() as u64;
    assert_eq!(read, [0, tiny, tiny + (20 << 20)], "bytes read");
}

#[test]
fn ten_thousand_files_truncated_with_exact_totals() {
    let mut ov = Overlay::new();
    put(ov.lower(), "etc/motd", b"hello\n");
    for i in 0..10 {
        put(ov.lower(), &format!("data/d{i}/old"), b"old\n");
    }
    ov.mount("");
    for i in 0..10 {
        let dir = ov.merged().join(format!("data/d{i}"));
        for j in 0..1000 {
            fs::write(dir.join(format!("f{j:04}")), format!("{i}/{j}\n")).unwrap();
        }
    }
    ov.sh("rm data/d0/old; echo changed > etc/motd");
    ov.unmount();

    let all = ov.diff_with(&DiffOptions {
        max_entries: 100_000,
        ..Default::default()
    });
    assert_totals(&all, 10_000, 1, 1);
    assert_eq!(all.entries.len(), 10_002);
    assert!(!all.summary.truncated);
    let mut sorted = all.entries.clone();
    sorted.sort_by_key(|e| e.path_os());
    assert_eq!(sorted, all.entries, "entries are in path order");

    let some = ov.diff_with(&DiffOptions {
        max_entries: 100,
        ..Default::default()
    });
    assert_totals(&some, 10_000, 1, 1);
    assert_eq!(some.summary.entries_kept, 100);
    assert_eq!(some.entries.len(), 100);
    assert!(some.summary.truncated);
    assert_eq!(some.summary.tree_hash, all.summary.tree_hash);
    assert_eq!(some.entries[..], all.entries[..100]);

    let none = ov.diff_with(&DiffOptions {
        max_entries: 0,
        ..Default::default()
    });
    assert_eq!(none.summary.tree_hash, all.summary.tree_hash);
    assert!(none.entries.is_empty());
}

#[test]
fn non_utf8_names() {
    for config in CONFIGS {
        let mut ov = Overlay::new();
        let old = OsStr::from_bytes(b"old-\xff");
        fs::write(ov.lower().join(old), b"old").unwrap();
        ov.mount(config);
        let m = ov.merged();
        let name = OsStr::from_bytes(b"caf\xe9.txt");
        fs::write(m.join(name), b"x").unwrap();
        symlink(OsStr::from_bytes(b"/tmp/\x80target"), m.join("link")).unwrap();
        fs::write(m.join("ok-\u{e9}"), b"utf8").unwrap();
        fs::remove_file(m.join(old)).unwrap();
        let diff = ov.diff();

        assert_eq!(
            show(&diff),
            [
                "A /caf\\xe9.txt file",
                "A /link symlink",
                "A /ok-\u{e9} file",
                "D /old-\\xff file",
            ],
            "{config}"
        );
        let cafe = entry(&diff, "/caf\\xe9.txt");
        assert_eq!(cafe.path_os().as_os_str().as_bytes(), b"/caf\xe9.txt");
        assert!(cafe.path_bytes.is_some());
        let link = entry(&diff, "/link");
        assert!(link.path_bytes.is_none());
        assert_eq!(link.target.as_deref(), Some("/tmp/\\x80target"));
        assert_eq!(
            link.target_os().unwrap().as_os_str().as_bytes(),
            b"/tmp/\x80target"
        );
        assert_eq!(
            entry(&diff, "/old-\\xff").path_os().as_os_str().as_bytes(),
            b"/old-\xff"
        );
        assert!(entry(&diff, "/ok-\u{e9}").path_bytes.is_none());

        let json = serde_json::to_value(cafe).unwrap();
        assert_eq!(json["path"], "/caf\\xe9.txt");
        assert_eq!(json["path_bytes"], "L2NhZukudHh0");
    }
}

#[test]
fn opaque_directory() {
    for config in CONFIGS {
        let mut ov = Overlay::new();
        put(ov.lower(), "opt/tool/a", b"a\n");
        put(ov.lower(), "opt/tool/b", b"b\n");
        put(ov.lower(), "opt/tool/sub/c", b"c\n");
        put(ov.lower(), "opt/tool/keep/d", b"d\n");
        ov.mount(config);
        ov.sh("rm -r opt/tool; mkdir opt/tool; echo new > opt/tool/new; echo a > opt/tool/a; mkdir opt/tool/keep");
        assert!(has_xattr(
            &ov.upper().join("opt/tool"),
            "trusted.overlay.opaque"
        ));
        let diff = ov.diff();
        assert_eq!(
            show(&diff),
            [
                "C /opt/tool dir",
                "C /opt/tool/a file meta",
                "D /opt/tool/b file",
                "C /opt/tool/keep dir",
                "D /opt/tool/keep/d file",
                "A /opt/tool/new file",
                "D /opt/tool/sub dir",
            ],
            "{config}"
        );
        // Same bytes, made again: only its mtime differs.
        assert!(entry(&diff, "/opt/tool/a").sha256.is_some());
    }
}

#[test]
fn aufs_whiteouts_from_an_image_layer() {
    // An upper dir laid out like an unpacked OCI layer, no mount involved.
    let ov = Overlay::new();
    let (lower, upper) = (ov.lower().to_path_buf(), ov.upper());
    put(&lower, "etc/a", b"a");
    put(&lower, "etc/b", b"b");
    put(&lower, "var/cache/x", b"x");
    put(&lower, "var/cache/y/deep", b"y");
    put(&upper, "etc/.wh.a", b"");
    put(&upper, "etc/.wh.nothing-there", b"");
    put(&upper, "etc/.wh..wh.plnk", b"");
    put(&upper, "var/cache/.wh..wh..opq", b"");
    put(&upper, "var/cache/z", b"z");
    let diff = diff_upper(&upper, &[lower], &DiffOptions::default()).unwrap();
    assert_eq!(
        show(&diff),
        [
            "D /etc/a file",
            "C /var/cache dir",
            "D /var/cache/x file",
            "D /var/cache/y dir",
            "A /var/cache/z file",
        ]
    );
}

#[test]
fn several_lower_layers() {
    let mut ov = Overlay::with_lowers(2);
    let (top, bottom) = (ov.lowers[0].clone(), ov.lowers[1].clone());
    put(&bottom, "etc/base", b"base");
    put(&bottom, "etc/gone", b"gone");
    put(&bottom, "opt/old/x", b"x");
    put(&top, "etc/top", b"top");
    // The top layer deletes /etc/gone and makes /opt/old opaque.
    Command::new("mknod")
        .arg(top.join("etc/gone"))
        .args(["c", "0", "0"])
        .status()
        .unwrap();
    put(&top, "opt/old/y", b"y");
    rustix::fs::setxattr(
        top.join("opt/old"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    ov.mount("");
    assert!(!ov.merged().join("etc/gone").exists());
    assert!(!ov.merged().join("opt/old/x").exists());
    ov.sh("rm etc/base etc/top; echo again > etc/gone; rm -r opt/old; mkdir opt/old");
    let diff = ov.diff();
    assert_eq!(
        show(&diff),
        [
            "D /etc/base file",
            "A /etc/gone file",
            "D /etc/top file",
            "C /opt/old dir",
            "D /opt/old/y file",
        ]
    );
}

#[test]
fn exclude_mount_points() {
    let mut ov = Overlay::new();
    put(ov.lower(), "etc/motd", b"hello\n");
    ov.mount("");
    ov.sh("mkdir proc dev; echo x > dev/x; echo y > sys; touch etc/ld.so.preload etc/other");
    let options = DiffOptions {
        exclude: vec![
            "/proc".into(),
            "dev".into(),
            "/sys".into(),
            "/etc/ld.so.preload".into(),
        ],
        ..Default::default()
    };
    let diff = ov.diff_with(&options);
    // A mount-point dir's own entry goes, not what is under it; a file
    // mount point goes.
    assert_eq!(show(&diff), ["A /dev/x file", "A /etc/other file"]);
    assert_totals(&diff, 2, 0, 0);
}

#[test]
fn same_changes_same_tree_hash() {
    let run = |config: &str| {
        let mut ov = Overlay::new();
        put(ov.lower(), "etc/motd", b"hello\n");
        put(ov.lower(), "etc/passwd", b"root:x:0:0::/root:/bin/sh\n");
        put(ov.lower(), "usr/lib/x/y", b"y");
        ov.mount(config);
        ov.sh(
            "echo bye > etc/motd; chmod 600 etc/passwd; rm -r usr/lib/x; mkdir -p a/b; \
             echo 1 > a/b/c; ln -s c a/b/l; ln a/b/c a/hard; mkfifo a/f",
        );
        // Time passes between the two runs: mtimes differ, hashes must not.
        std::thread::sleep(std::time::Duration::from_millis(20));
        ov.diff()
    };
    let one = run("");
    let two = run("");
    assert_eq!(one.summary.tree_hash, two.summary.tree_hash);
    assert_eq!(one, two);
    assert_eq!(one.summary.total(), 9);

    let mut other = Overlay::new();
    put(other.lower(), "etc/motd", b"hello\n");
    other.mount("");
    other.sh("echo bye! > etc/motd");
    assert_ne!(other.diff().summary.tree_hash, one.summary.tree_hash);
}

#[test]
fn entry_json_shape() {
    let mut ov = Overlay::new();
    put(ov.lower(), "etc/motd", b"hello\n");
    ov.mount("");
    ov.sh("chmod 600 etc/motd");
    let diff = ov.diff();
    let json = serde_json::to_value(&diff).unwrap();
    let e = &json["entries"][0];
    assert_eq!(e["path"], "/etc/motd");
    assert_eq!(e["change"], "C");
    assert_eq!(e["kind"], "file");
    assert_eq!(e["mode"], 0o600);
    assert_eq!(e["size"], 6);
    assert_eq!(e["metadata_only"], true);
    assert_eq!(e["sha256"], sha(b"hello\n"));
    assert_eq!(e["before"]["mode"], 0o644);
    assert!(e.get("path_bytes").is_none());
    assert!(e.get("hard_link").is_none());
    let s = &json["summary"];
    assert_eq!(s["changed"], 1);
    assert_eq!(s["entries_kept"], 1);
    assert_eq!(s["truncated"], false);
    assert_eq!(diff.entries[0].change, Change::Changed);
}

#[test]
fn userxattr_mount() {
    // Rootless overlays (userxattr) keep their marks in user.overlay.*.
    let mut ov = Overlay::new();
    put(ov.lower(), "opt/tool/a", b"a\n");
    put(ov.lower(), "opt/tool/b", b"b\n");
    put(ov.lower(), "etc/motd", b"hello\n");
    ov.mount("userxattr");
    ov.sh("rm -r opt/tool; mkdir opt/tool; echo a > opt/tool/a; rm etc/motd");
    assert!(has_xattr(
        &ov.upper().join("opt/tool"),
        "user.overlay.opaque"
    ));
    let diff = ov.diff();
    assert_eq!(
        show(&diff),
        [
            "D /etc/motd file",
            "C /opt/tool dir",
            "C /opt/tool/a file meta",
            "D /opt/tool/b file",
        ]
    );
}

#[test]
fn xattr_whiteouts() {
    // A zero-size file with overlay.whiteout in a directory marked
    // overlay.opaque=x is a whiteout; the directory is not opaque.
    let ov = Overlay::new();
    let (lower, upper) = (ov.lower().to_path_buf(), ov.upper());
    put(&lower, "etc/a", b"a");
    put(&lower, "etc/b", b"b");
    put(&upper, "etc/a", b"");
    put(&upper, "etc/empty", b"");
    let set = |path: PathBuf, name: &str, value: &[u8]| {
        rustix::fs::setxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap()
    };
    set(upper.join("etc"), "trusted.overlay.opaque", b"x");
    set(upper.join("etc/a"), "trusted.overlay.whiteout", b"");
    let diff = diff_upper(&upper, &[lower], &DiffOptions::default()).unwrap();
    assert_eq!(show(&diff), ["D /etc/a file", "A /etc/empty file"]);
}

#[test]
fn mount_inside_upper_is_an_error() {
    let ov = Overlay::new();
    let inner = ov.upper().join("mnt");
    fs::create_dir(&inner).unwrap();
    mount(
        Some(ov.lower()),
        &inner,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    let result = diff_upper(&ov.upper(), &[], &DiffOptions::default());
    umount2(&inner, MntFlags::MNT_DETACH).unwrap();
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("mount point") && err.contains("/upper/mnt"),
        "{err}"
    );
}
