//! runc's global and create flags that podman and containerd rely on:
//! `--log`/`--log-format json`, `--console-socket`, `--preserve-fds`,
//! `--no-pivot`, `--systemd-cgroup`.

use std::fs;
use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::process::Stdio;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use substrate_tests::{assert_no_leftovers, unique_id, Bundle, Runtime};

#[test]
fn json_log_gets_runc_shaped_error_lines() {
    let rt = Runtime::new();
    let id = unique_id("log");
    let log = rt.root().join("runtime.log");
    let out = rt.run(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        &id,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = fs::read_to_string(&log).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["level"], "error");
    assert_eq!(line["msg"], format!("container \"{id}\" does not exist"));
    assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
    // stderr still carries the same one line for whoever ran the command.
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);

    let err = rt.fails(&["--log-format", "yaml", "list"]);
    assert!(err.contains("invalid --log-format \"yaml\""), "{err}");
}

#[test]
fn console_socket_receives_the_pty_master() {
    let rt = Runtime::new();
    let id = unique_id("console");
    let mut bundle = Bundle::new(&id, &["sh", "-c", "tty; echo through-the-pty"]);
    bundle.edit(|c| c["process"]["terminal"] = true.into());
    let socket_path = bundle.path().join("console.sock");
    let listener = UnixListener::bind(&socket_path).unwrap();

    let receiver = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut name = [0u8; 256];
        let mut iov = [IoSliceMut::new(&mut name)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .unwrap();
        let fd = msg
            .cmsgs()
            .unwrap()
            .find_map(|c| match c {
                ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                _ => None,
            })
            .expect("a pty master fd");
        // SAFETY: the fd was just received over SCM_RIGHTS and nothing else owns it.
        unsafe { OwnedFd::from_raw_fd(fd) }
    });
    rt.ok(&[
        "create",
        "--bundle",
        bundle.path_str(),
        "--console-socket",
        socket_path.to_str().unwrap(),
        &id,
    ]);
    let master = receiver.join().unwrap();
    rt.ok(&["start", &id]);
    let mut pty = fs::File::from(master);
    let mut output = Vec::new();
    let mut buf = [0u8; 1024];
    // Reading the master ends with EIO once the world's side closes.
    while let Ok(n) = pty.read(&mut buf) {
        if n == 0 {
            break;
        }
        output.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&output).contains("through-the-pty") {
            break;
        }
    }
    let output = String::from_utf8_lossy(&output);
    assert!(output.contains("/dev/pts/"), "{output}");
    assert!(output.contains("through-the-pty"), "{output}");
    rt.wait_status(&id, "stopped");
    rt.ok(&["delete", &id]);
    assert_no_leftovers(rt.root(), &id);
}

#[test]
fn terminal_without_console_socket_is_refused_on_create() {
    let rt = Runtime::new();
    let id = unique_id("noconsole");
    let mut bundle = Bundle::new(&id, &["true"]);
    bundle.edit(|c| c["process"]["terminal"] = true.into());
    let out = rt.run(&["create", "--bundle", bundle.path_str(), &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("console"),
        "{out:?}"
    );
    assert_no_leftovers(rt.root(), &id);
}

#[test]
fn preserve_fds_passes_extra_fds_in() {
    let rt = Runtime::new();
    let id = unique_id("fds");
    let bundle = Bundle::new(&id, &["sh", "-c", "echo written-through-fd-3 >&3"]);
    let target = tempfile::NamedTempFile::new().unwrap();
    let file = fs::OpenOptions::new()
        .append(true)
        .open(target.path())
        .unwrap();
    let mut cmd = rt.cmd(&[
        "run",
        "--preserve-fds",
        "1",
        "--bundle",
        bundle.path_str(),
        &id,
    ]);
    let raw = file.as_raw_fd();
    // SAFETY: between fork and exec only dup2 (async-signal-safe) runs, on
    // fds this process owns.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            if nix::libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = cmd.stdin(Stdio::null()).status().unwrap();
    assert!(status.success());
    assert_eq!(
        fs::read_to_string(target.path()).unwrap(),
        "written-through-fd-3\n"
    );
    assert_no_leftovers(rt.root(), &id);
}

#[test]
fn no_pivot_and_systemd_cgroup_flags_are_accepted() {
    let rt = Runtime::new();
    let id = unique_id("nopivot");
    let bundle = Bundle::new(&id, &["sh", "-c", "echo ok"]);
    assert_eq!(
        rt.ok(&[
            "--systemd-cgroup",
            "run",
            "--no-pivot",
            "--bundle",
            bundle.path_str(),
            &id
        ]),
        "ok\n"
    );
    assert_no_leftovers(rt.root(), &id);
}
