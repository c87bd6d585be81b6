//! The file watch against the real kernel: each test mounts its own upper
//! filesystem (tmpfs, or an ext4 loop image as worlds have) holding
//! `upper/` and `work/`, an overlay of a lower dir and it, and runs real
//! programs that write through the overlay — static busybox, static C
//! programs using raw system calls or io_uring — then checks the exact
//! events: what, where in the world, and by which process.
//!
//! Runs as root (mounts, fanotify filesystem marks, open_by_handle_at).
//! Each test waits for its events by polling the fanotify fd up to a
//! deadline, until a sentinel file the test writes last has been reported:
//! the kernel queues events in order, so everything the program did is in
//! by then.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use substrate_sensor::files::{FileChange, FileEvent, FileEvents, FileWatch};

const BUSYBOX: &str = "/bin/busybox";
/// The files the test writes after the programs (`/.sentinel-N`): once
/// one's Create is read, everything before it is.
const SENTINEL: &str = "/.sentinel-";
const DEADLINE: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, PartialEq, Eq)]
enum UpperFs {
    Tmpfs,
    Ext4,
}

/// A world's filesystems in miniature, unmounted and removed on drop (also
/// when a test fails).
struct Sandbox {
    base: PathBuf,
    layer: PathBuf,
    lower: PathBuf,
    merged: PathBuf,
    /// Mounted, in order: unmounted in reverse.
    mounts: Vec<PathBuf>,
    sentinels: std::cell::Cell<usize>,
}

impl Sandbox {
    fn new(name: &str, upper_fs: UpperFs) -> Sandbox {
        let mut sandbox = Sandbox::without_overlay(name, upper_fs);
        sandbox.mount_overlay();
        sandbox
    }

    /// The upper filesystem, `upper/` and `work/` in it, and no overlay yet.
    fn without_overlay(name: &str, upper_fs: UpperFs) -> Sandbox {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let base = std::env::temp_dir().join(format!(
            "substrate-files-{}-{}-{name}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).unwrap();
        let mut sandbox = Sandbox {
            layer: base.join("layer"),
            lower: base.join("lower"),
            merged: base.join("merged"),
            base,
            mounts: Vec::new(),
            sentinels: std::cell::Cell::new(0),
        };
        for dir in [&sandbox.layer, &sandbox.lower, &sandbox.merged] {
            fs::create_dir(dir).unwrap();
        }
        // The lower layer: files, a dir tree, an executable.
        let lower = &sandbox.lower;
        fs::write(lower.join("a.txt"), "lower a\n").unwrap();
        fs::write(lower.join("del.txt"), "lower del\n").unwrap();
        fs::write(lower.join("owned.txt"), "lower owned\n").unwrap();
        fs::create_dir_all(lower.join("dir/sub")).unwrap();
        fs::write(lower.join("dir/sub/b.txt"), "lower b\n").unwrap();
        fs::create_dir(lower.join("empty-dir")).unwrap();
        copy_in_child(Path::new(BUSYBOX), &lower.join("lower-busybox"));

        match upper_fs {
            UpperFs::Tmpfs => {
                mount(
                    Some("tmpfs"),
                    &sandbox.layer,
                    Some("tmpfs"),
                    MsFlags::empty(),
                    Some("size=64m,mode=0755"),
                )
                .unwrap();
            }
            UpperFs::Ext4 => {
                let image = sandbox.base.join("layer.img");
                fs::File::create(&image).unwrap().set_len(64 << 20).unwrap();
                run_ok(
                    Command::new("mkfs.ext4")
                        .args(["-q", "-F", "-O", "^has_journal"])
                        .arg(&image),
                );
                // `-o loop` sets autoclear: the device goes with the mount.
                run_ok(
                    Command::new("mount")
                        .args(["-t", "ext4", "-o", "loop,noatime,nosuid,nodev"])
                        .arg(&image)
                        .arg(&sandbox.layer),
                );
            }
        }
        sandbox.mounts.push(sandbox.layer.clone());
        fs::create_dir(sandbox.upper()).unwrap();
        fs::create_dir(sandbox.work()).unwrap();
        sandbox
    }

    fn mount_overlay(&mut self) {
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            self.lower.display(),
            self.upper().display(),
            self.work().display()
        );
        mount(
            Some("overlay"),
            &self.merged,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        )
        .unwrap();
        self.mounts.push(self.merged.clone());
    }

    fn unmount_overlay(&mut self) {
        assert_eq!(self.mounts.pop().as_ref(), Some(&self.merged));
        umount2(&self.merged, MntFlags::empty()).unwrap();
    }

    fn upper(&self) -> PathBuf {
        self.layer.join("upper")
    }

    fn work(&self) -> PathBuf {
        self.layer.join("work")
    }

    /// `path` inside the world, as the host reaches it.
    fn world(&self, path: &str) -> PathBuf {
        self.merged.join(path.trim_start_matches('/'))
    }

    fn watch(&self) -> FileWatch {
        FileWatch::new(&self.layer, &self.upper(), &self.work())
            .unwrap()
            .with_lower_dirs([self.lower.clone()])
    }

    /// Writes `path` of the world before a watch starts, from a child
    /// process: see [`copy_in_child`].
    fn write_in_child(&self, path: &str, contents: &str) {
        run_ok(
            Command::new(BUSYBOX)
                .args(["sh", "-c", "printf %s \"$1\" > \"$2\"", "sh", contents])
                .arg(self.world(path)),
        );
    }

    /// A test program of `tests/programs`, built static with musl.
    fn program(&self, name: &str) -> PathBuf {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/programs")
            .join(format!("{name}.c"));
        let binary = self.base.join(name);
        // The kernel headers (<linux/io_uring.h>) are not in musl's path;
        // after it, they add only what musl lacks.
        run_ok(
            Command::new("musl-gcc")
                .args(["-static", "-O2", "-Wall", "-Werror"])
                .args([
                    "-idirafter",
                    "/usr/include",
                    "-idirafter",
                    "/usr/include/x86_64-linux-gnu",
                ])
                .arg("-o")
                .arg(&binary)
                .arg(&source),
        );
        binary
    }

    /// Writes a sentinel, then reads `watch` until its Create is in:
    /// every event before it, the sentinels' own left out.
    fn events(&self, watch: &mut FileWatch) -> Vec<FileEvent> {
        let n = self.sentinels.get();
        self.sentinels.set(n + 1);
        let sentinel = format!("{SENTINEL}{n}");
        // Through the overlay if there is one, else straight into upper/:
        // the same path in the world.
        let host_path = if self.mounts.contains(&self.merged) {
            self.world(&sentinel)
        } else {
            self.upper().join(sentinel.trim_start_matches('/'))
        };
        fs::write(host_path, "end\n").unwrap();
        let deadline = Instant::now() + DEADLINE;
        let mut events = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                watch.wait(Some(left)).unwrap(),
                "no sentinel within {DEADLINE:?}; events so far: {}",
                show(&events)
            );
            let FileEvents {
                events: read,
                overflows,
                unplaced,
                garbled,
            } = watch.read().unwrap();
            assert_eq!((overflows, unplaced), (0, 0), "{}", show(&read));
            assert_eq!(garbled, []);
            events.extend(read);
            if events
                .iter()
                .any(|e| e.path == sentinel.as_bytes() && e.op == FileChange::Create)
            {
                events.retain(|e| !e.path.starts_with(SENTINEL.as_bytes()));
                return events;
            }
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for mount_point in self.mounts.iter().rev() {
            if let Err(e) = umount2(mount_point, MntFlags::MNT_DETACH) {
                eprintln!("cannot unmount {}: {e}", mount_point.display());
            }
        }
        let _ = fs::remove_dir_all(&self.base);
    }
}

/// Copies `from` to `to` in a child process. A file the test process
/// writes itself may be held open by a child that another test thread forks
/// meanwhile: its late close (at its exec) would be an event of a stranger
/// in this test's watch, and running the file would fail with ETXTBSY.
fn copy_in_child(from: &Path, to: &Path) {
    run_ok(Command::new(BUSYBOX).arg("cp").arg(from).arg(to));
}

fn run_ok(command: &mut Command) -> Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `program args...` to its end; its pid (it does not fork).
fn run(program: impl AsRef<std::ffi::OsStr>, args: &[&std::ffi::OsStr]) -> (i32, Output) {
    let child = Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (pid, out)
}

/// `busybox applet args...`, with world paths made host paths.
fn busybox(sandbox: &Sandbox, applet: &str, args: &[&str]) -> i32 {
    let mut argv: Vec<std::ffi::OsString> = vec![applet.into()];
    for arg in args {
        if arg.starts_with('/') {
            argv.push(sandbox.world(arg).into());
        } else {
            argv.push(arg.into());
        }
    }
    let argv: Vec<&std::ffi::OsStr> = argv.iter().map(|a| a.as_os_str()).collect();
    run(BUSYBOX, &argv).0
}

fn ev(pid: i32, op: FileChange, path: &str, is_dir: bool) -> FileEvent {
    FileEvent {
        pid,
        op,
        path: path.as_bytes().to_vec(),
        new_path: None,
        is_dir,
    }
}

fn file(pid: i32, op: FileChange, path: &str) -> FileEvent {
    ev(pid, op, path, false)
}

fn dir(pid: i32, op: FileChange, path: &str) -> FileEvent {
    ev(pid, op, path, true)
}

fn show(events: &[FileEvent]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "\n  {} {:?} {}{}{}",
                e.pid,
                e.op,
                String::from_utf8_lossy(&e.path),
                e.new_path
                    .as_ref()
                    .map(|p| format!(" -> {}", String::from_utf8_lossy(p)))
                    .unwrap_or_default(),
                if e.is_dir { " (dir)" } else { "" }
            )
        })
        .collect()
}

#[track_caller]
fn assert_events(got: &[FileEvent], want: &[FileEvent]) {
    assert!(got == want, "got:{}\nwant:{}", show(got), show(want));
}

/// Also in a dir of the lower layer, which overlay copies up first (made
/// in work/, renamed into upper/): not a Mkdir.
#[test]
fn a_shell_redirect_is_a_create_and_a_write() {
    let sandbox = Sandbox::new("redirect", UpperFs::Tmpfs);
    let mut watch = sandbox.watch();
    let script = format!(
        "echo x > {}; echo y > {}",
        sandbox.world("/new.txt").display(),
        sandbox.world("/dir/sub/new.txt").display()
    );
    let (pid, _) = run(BUSYBOX, &["sh".as_ref(), "-c".as_ref(), script.as_ref()]);
    assert_events(
        &sandbox.events(&mut watch),
        &[
            file(pid, FileChange::Create, "/new.txt"),
            file(pid, FileChange::Write, "/new.txt"),
            file(pid, FileChange::Create, "/dir/sub/new.txt"),
            file(pid, FileChange::Write, "/dir/sub/new.txt"),
        ],
    );
}

/// Overlay copies the lower file up (a tmpfile in work/, linked into
/// upper/): the program created nothing, it wrote.
#[test]
fn appending_to_a_lower_file_is_a_write_not_a_create() {
    let sandbox = Sandbox::new("append", UpperFs::Tmpfs);
    let mut watch = sandbox.watch();
    let script = format!("echo more >> {}", sandbox.world("/dir/sub/b.txt").display());
    let (pid, _) = run(BUSYBOX, &["sh".as_ref(), "-c".as_ref(), script.as_ref()]);
    assert_events(
        &sandbox.events(&mut watch),
        &[file(pid, FileChange::Write, "/dir/sub/b.txt")],
    );
    assert!(
        sandbox.upper().join("dir/sub/b.txt").exists(),
        "not copied up"
    );
}

#[test]
fn a_megabyte_written_in_pages_is_one_write() {
    let sandbox = Sandbox::new("coalesce", UpperFs::Tmpfs);
    let mut watch = sandbox.watch();
    let pid = busybox(
        &sandbox,
        "dd",
        &[
            "if=/dev/zero",
            &format!("of={}", sandbox.world("/big").display()),
            "bs=4096",
            "count=256",
        ],
    );
    assert_events(
        &sandbox.events(&mut watch),
        &[
            file(pid, FileChange::Create, "/big"),
            file(pid, FileChange::Write, "/big"),
        ],
    );
    assert_eq!(fs::metadata(sandbox.world("/big")).unwrap().len(), 1 << 20);
}

/// A lower file is deleted by a whiteout overlay renames into upper/; an
/// upper-only file by an unlink in upper/: both are a Delete.
#[test]
fn removing_lower_and_upper_files_are_deletes() {
    let sandbox = Sandbox::new("rm", UpperFs::Tmpfs);
    sandbox.write_in_child("/upper-only.txt", "mine\n");
    let mut watch = sandbox.watch();
    let lower = busybox(&sandbox, "rm", &["/del.txt"]);
    let upper = busybox(&sandbox, "rm", &["/upper-only.txt"]);
    assert_events(
        &sandbox.events(&mut watch),
        &[
            file(lower, FileChange::Delete, "/del.txt"),
            file(upper, FileChange::Delete, "/upper-only.txt"),
        ],
    );
    let whiteout = fs::symlink_metadata(sandbox.upper().join("del.txt")).unwrap();
    assert_eq!(
        (whiteout.mode() & libc::S_IFMT, whiteout.rdev()),
        (libc::S_IFCHR, 0)
    );
}

/// `rm -r` of a lower tree: overlay copies the dirs up, whites out the
/// file, swaps each dir for an opaque one and whites it out; the program
/// removed one file and two dirs.
#[test]
fn removing_a_lower_tree_is_a_delete_and_two_rmdirs() {
    let sandbox = Sandbox::new("rm-r", UpperFs::Tmpfs);
    let mut watch = sandbox.watch();
    let pid = busybox(&sandbox, "rm", &["-r", "/dir"]);
    let rmdir_empty = busybox(&sandbox, "rmdir", &["/empty-dir"]);
    assert_events(
        &sandbox.events(&mut watch),
        &[
            file(pid, FileChange::Delete, "/dir/sub/b.txt"),
            dir(pid, FileChange::Rmdir, "/dir/sub"),
            dir(pid, FileChange::Rmdir, "/dir"),
            dir(rmdir_empty, FileChange::Rmdir, "/empty-dir"),
        ],
    );
    assert!(!sandbox.world("/dir").exists());
}

/// Creating where a lower entry was deleted: overlay makes it in work/ and
/// renames it over the whiteout (a file) or swaps it with the whiteout (a
/// dir): a creation all the same.
#[test]
fn creating_over_deleted_lower_entries_is_a_create_and_a_mkdir() {
    let sandbox = Sandbox::new("over-whiteout", UpperFs::Tmpfs);
    fs::remove_file(sandbox.world("/del.txt")).unwrap();
    fs::remove_dir(sandbox.world("/empty-dir")).unwrap();
    let mut watch = sandbox.watch();
    let script = format!("echo again > {}", sandbox.world("/del.txt").display());
    let (shell, _) = run(BUSYBOX, &["sh".as_ref(), "-c".as_ref(), script.as_ref()]);
    let mkdir = busybox(&sandbox, "mkdir", &["/empty-dir"]);
    assert_events(
        &sandbox.events(&mut watch),
        &[
            file(shell, FileChange::Create, "/del.txt"),
            file(shell, FileChange::Write, "/del.txt"),
            dir(mkdir, FileChange::Mkdir, "/empty-dir"),
        ],
    );
}

/// One FAN_RENAME event holds both names (fanotify has no cookie to pair
/// MOVED_FROM with MOVED_TO). What happens in a renamed dir afterwards is
/// placed at its new path, though nothing was read in between.
#[test]
fn a_rename_is_one_event_with_both_paths() {
    let sandbox = Sandbox::new("mv", UpperFs::Tmpfs);
    sandbox.write_in_child("/n1", "mine\n");
    let mut watch = sandbox.watch();
    let upper = busybox(&sandbox, "mv", &["/n1", "/n2"]);
    let lower = busybox(&sandbox, "mv", &["/a.txt", "/a2.txt"]);
    let mkdir = busybox(&sandbox, "mkdir", &["/d1"]);
    let mv_dir = busybox(&sandbox, "mv", &["/d1", "/d2"]);
    let touch = busybox(&sandbox, "touch", &["/d2/f"]);
    let rename = |pid, from: &str, to: &str, is_dir| FileEvent {
        new_path: Some(to.as_bytes().to_vec()),
        ..ev(pid, FileChange::Rename, from, is_dir)
    };
    assert_events(
        &sandbox.events(&mut watch),
        &[
            rename(upper, "/n1", "/n2", false),
            rename(lower, "/a.txt", "/a2.txt", false),
            dir(mkdir, FileChange::Mkdir, "/d1"),
            rename(mv_dir, "/d1", "/d2", true),
            file(touch, FileChange::Create, "/d2/f"),
        ],
    );
}

/// Mounting the overlay makes its work dir and tries what the upper
/// filesystem supports (tmpfiles, whiteouts, xattrs) on it; unmounting
/// cleans up: none of it is the world's doing.
#[test]
fn mounting_and_unmounting_the_overlay_is_not_reported() {
    let mut sandbox = Sandbox::without_overlay("mount", UpperFs::Tmpfs);
    let mut watch = sandbox.watch();
    sandbox.mount_overlay();
    // A file of the lower layer copied up, and one deleted, for the
    // unmount to have something to leave.
    let append = busybox(&sandbox, "sh", &["-c", "echo x >> \"$0\"", "/a.txt"]);
    let rm = busybox(&sandbox, "rm", &["/del.txt"]);
    sandbox.unmount_overlay();
    assert_events(
        &sandbox.events(&mut watch),
        &[
            file(append, FileChange::Write, "/a.txt"),
            file(rm, FileChange::Delete, "/del.txt"),
        ],
    );
}

/// chmod and chown of lower files: copied up, then changed, in one call;
/// the lower layer says what they were.
#[test]
fn chmod_and_chown_of_lower_files() {
    let sandbox = Sandbox::new("chmod", UpperFs::Tmpfs);
    let mut watch = sandbox.watch();
    let chmod = busybox(&sandbox, "chmod", &["600", "/a.txt"]);
    let chown = busybox(&sandbox, "chown", &["1234:5678", "/owned.txt"]);
    let touch = busybox(&sandbox, "touch", &["/del.txt"]);
    assert_events(
        &sandbox.events(&mut watch),
        &[
            file(chmod, FileChange::Chmod { mode: 0o600 }, "/a.txt"),
            file(
                chown,
                FileChange::Chown {
                    uid: 1234,
                    gid: 5678,
                },
                "/owned.txt",
            ),
            file(touch, FileChange::Metadata, "/del.txt"),
        ],
    );
    let mode = fs::metadata(sandbox.world("/a.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o600);
}

#[test]
fn mkdir_symlink_link_and_mknod() {
    let sandbox = Sandbox::new("kinds", UpperFs::Tmpfs);
    sandbox.write_in_child("/target", "t\n");
    let mut watch = sandbox.watch();
    let mkdir = busybox(&sandbox, "mkdir", &["/d"]);
    let symlink = busybox(&sandbox, "ln", &["-s", "target", "/s"]);
    let touch = busybox(&sandbox, "touch", &["/d/f"]);
    let link = busybox(&sandbox, "ln", &["/d/f", "/hard"]);
    let fifo = busybox(&sandbox, "mkfifo", &["/fifo"]);
    assert_events(
        &sandbox.events(&mut watch),
        &[
            dir(mkdir, FileChange::Mkdir, "/d"),
            file(symlink, FileChange::Symlink, "/s"),
            file(touch, FileChange::Create, "/d/f"),
            file(link, FileChange::Link, "/hard"),
            file(fifo, FileChange::Mknod, "/fifo"),
        ],
    );
}

/// A chmod is told from a touch by what was last seen of the inode: here
/// the creations were read before the chmods happened, as a monitor that
/// keeps up reads them.
#[test]
fn chmod_of_files_and_dirs_the_world_made() {
    let sandbox = Sandbox::new("chmod-upper", UpperFs::Tmpfs);
    let mut watch = sandbox.watch();
    let mkdir = busybox(&sandbox, "mkdir", &["/d"]);
    let touch = busybox(&sandbox, "touch", &["/d/f"]);
    assert_events(
        &sandbox.events(&mut watch),
        &[
            dir(mkdir, FileChange::Mkdir, "/d"),
            file(touch, FileChange::Create, "/d/f"),
        ],
    );
    let chmod_dir = busybox(&sandbox, "chmod", &["700", "/d"]);
    let chmod_file = busybox(&sandbox, "chmod", &["4751", "/d/f"]);
    let chown_root = busybox(&sandbox, "chown", &["7:8", "/"]);
    assert_events(
        &sandbox.events(&mut watch),
        &[
            dir(chmod_dir, FileChange::Chmod { mode: 0o700 }, "/d"),
            file(chmod_file, FileChange::Chmod { mode: 0o4751 }, "/d/f"),
            dir(chown_root, FileChange::Chown { uid: 7, gid: 8 }, "/"),
        ],
    );
}

/// No libc wrapper, no preload: the kernel sees the raw syscalls.
#[test]
fn a_static_raw_syscall_program_is_seen() {
    let sandbox = Sandbox::new("raw", UpperFs::Tmpfs);
    let program = sandbox.program("raw_write");
    let mut watch = sandbox.watch();
    let (pid, _) = run(&program, &[sandbox.world("/raw.txt").as_os_str()]);
    assert_events(
        &sandbox.events(&mut watch),
        &[
            file(pid, FileChange::Create, "/raw.txt"),
            file(pid, FileChange::Write, "/raw.txt"),
        ],
    );
}

/// No open, write or close system call at all: io_uring does them.
#[test]
fn an_io_uring_program_is_seen() {
    let sandbox = Sandbox::new("uring", UpperFs::Tmpfs);
    let program = sandbox.program("uring_write");
    let mut watch = sandbox.watch();
    let (pid, _) = run(&program, &[sandbox.world("/uring.txt").as_os_str()]);
    assert_events(
        &sandbox.events(&mut watch),
        &[
            file(pid, FileChange::Create, "/uring.txt"),
            file(pid, FileChange::Write, "/uring.txt"),
        ],
    );
    assert_eq!(
        fs::read_to_string(sandbox.world("/uring.txt")).unwrap(),
        "written through io_uring\n"
    );
}

/// Gone from the upper layer before anyone looks: the trace still has it.
#[test]
fn a_file_created_and_deleted_within_a_millisecond_is_both() {
    let sandbox = Sandbox::new("flash", UpperFs::Tmpfs);
    let program = sandbox.program("create_delete");
    let mut watch = sandbox.watch();
    let (pid, out) = run(&program, &[sandbox.world("/flash").as_os_str()]);
    let took: u64 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(took < 1_000_000, "create to delete took {took} ns");
    assert_events(
        &sandbox.events(&mut watch),
        &[
            file(pid, FileChange::Create, "/flash"),
            file(pid, FileChange::Write, "/flash"),
            file(pid, FileChange::Delete, "/flash"),
        ],
    );
    assert!(fs::read_dir(sandbox.upper())
        .unwrap()
        .all(|e| e.unwrap().file_name() != "flash"));
}

/// `O_TMPFILE` then `linkat`: written before it has a name, reported when
/// it gets one.
#[test]
fn a_linked_tmpfile_is_a_create_with_its_write() {
    let sandbox = Sandbox::new("tmpfile", UpperFs::Tmpfs);
    let program = sandbox.program("tmpfile_link");
    let mut watch = sandbox.watch();
    let (pid, _) = run(
        &program,
        &[
            sandbox.world("/").as_os_str(),
            sandbox.world("/linked").as_os_str(),
        ],
    );
    assert_events(
        &sandbox.events(&mut watch),
        &[
            file(pid, FileChange::Create, "/linked"),
            file(pid, FileChange::Write, "/linked"),
        ],
    );
}

/// Running a program of the upper layer opens it for exec; one of the
/// lower layers (another filesystem) is not seen.
#[test]
fn exec_of_an_upper_file_is_seen_and_of_a_lower_one_not() {
    let sandbox = Sandbox::new("exec", UpperFs::Tmpfs);
    copy_in_child(Path::new(BUSYBOX), &sandbox.world("/upper-busybox"));
    let mut watch = sandbox.watch();
    // busybox runs the applet its argv[0] names.
    let run_as_busybox = |program: PathBuf| {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(program)
            .arg0("busybox")
            .arg("true")
            .spawn()
            .unwrap();
        assert!(child.wait().unwrap().success());
        child.id() as i32
    };
    let upper = run_as_busybox(sandbox.world("/upper-busybox"));
    run_as_busybox(sandbox.world("/lower-busybox"));
    assert_events(
        &sandbox.events(&mut watch),
        &[file(upper, FileChange::ExecOpen, "/upper-busybox")],
    );
}

/// What worlds have: the upper layer on an ext4 loop image.
#[test]
fn on_an_ext4_upper_filesystem() {
    let sandbox = Sandbox::new("ext4", UpperFs::Ext4);
    let program = sandbox.program("raw_write");
    let mut watch = sandbox.watch();
    let (raw, _) = run(&program, &[sandbox.world("/raw.txt").as_os_str()]);
    let script = format!("echo more >> {}", sandbox.world("/a.txt").display());
    let (append, _) = run(BUSYBOX, &["sh".as_ref(), "-c".as_ref(), script.as_ref()]);
    let rm = busybox(&sandbox, "rm", &["-r", "/del.txt", "/dir"]);
    let mkdir = busybox(&sandbox, "mkdir", &["/dir"]);
    assert_events(
        &sandbox.events(&mut watch),
        &[
            file(raw, FileChange::Create, "/raw.txt"),
            file(raw, FileChange::Write, "/raw.txt"),
            file(append, FileChange::Write, "/a.txt"),
            file(rm, FileChange::Delete, "/del.txt"),
            file(rm, FileChange::Delete, "/dir/sub/b.txt"),
            dir(rm, FileChange::Rmdir, "/dir/sub"),
            dir(rm, FileChange::Rmdir, "/dir"),
            dir(mkdir, FileChange::Mkdir, "/dir"),
        ],
    );
}

/// More events than the kernel queues while nobody reads: the loss is
/// reported, not hidden.
#[test]
fn a_queue_overflow_is_counted() {
    let sandbox = Sandbox::new("overflow", UpperFs::Tmpfs);
    let program = sandbox.program("many_files");
    // More files than the queue holds events: each file's creation is an
    // event of its own (distinct names are never merged).
    let queue: usize = fs::read_to_string("/proc/sys/fs/fanotify/max_queued_events")
        .map(|s| s.trim().parse().unwrap())
        .unwrap_or(16384);
    let files = queue + 1000;
    let mut watch = sandbox.watch();
    run(
        &program,
        &[sandbox.world("/").as_os_str(), files.to_string().as_ref()],
    );
    let mut overflows = 0;
    let mut creates = 0;
    let deadline = Instant::now() + DEADLINE;
    while watch.wait(Some(Duration::ZERO)).unwrap() {
        assert!(
            Instant::now() < deadline,
            "still reading after {DEADLINE:?}"
        );
        let read = watch.read().unwrap();
        overflows += read.overflows;
        creates += read
            .events
            .iter()
            .filter(|e| e.op == FileChange::Create)
            .count();
    }
    assert_eq!(overflows, 1);
    assert!((1..files).contains(&creates), "{creates} creates read");
}

/// fanotify will not report file handles on an overlay mount (the reason
/// for watching the upper filesystem), and a mark on a dir that is no
/// mount point would watch the whole filesystem under it.
#[test]
fn the_overlay_and_plain_dirs_are_refused() {
    use substrate_sensor::files::FileWatchError;
    let sandbox = Sandbox::new("refused", UpperFs::Tmpfs);
    let on_overlay = FileWatch::new(
        &sandbox.merged,
        &sandbox.world("/dir"),
        &sandbox.world("/dir/sub"),
    );
    assert!(
        matches!(on_overlay, Err(FileWatchError::Mark { .. })),
        "{on_overlay:?}"
    );
    let not_a_mount = FileWatch::new(&sandbox.upper(), &sandbox.upper(), &sandbox.upper());
    assert!(
        matches!(not_a_mount, Err(FileWatchError::NotAMountPoint { .. })),
        "{not_a_mount:?}"
    );
}
