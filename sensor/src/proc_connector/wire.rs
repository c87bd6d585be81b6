//! The proc connector's wire format: netlink messages carrying a `cn_msg`
//! carrying a `proc_event`, parsed from bytes with no socket in sight.
//!
//! Layouts (all native-endian), from `linux/netlink.h`, `linux/connector.h`
//! and `linux/cn_proc.h`:
//!
//! ```text
//! nlmsghdr   { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }          16 bytes
//! cn_msg     { u32 idx; u32 val; u32 seq; u32 ack; u16 len; u16 flags; }  20 bytes, then `len` bytes
//! proc_event { u32 what; u32 cpu; u64 timestamp_ns; union event_data; }   16 bytes + union
//! ```
//!
//! The `u64` in `proc_event` is declared `aligned(8)`, but the event starts at
//! offset 36 of the datagram, so every field is read by copying bytes, never
//! by casting a pointer.

use super::{ProcEvent, ProcEventKind, Received};

/// `NLMSG_HDRLEN`: `sizeof(struct nlmsghdr)` rounded up to `NLMSG_ALIGNTO`.
const NLMSG_HDRLEN: usize = 16;
/// `NLMSG_ALIGNTO` (netlink(7)): messages in one datagram start on 4-byte boundaries.
const NLMSG_ALIGNTO: usize = 4;
/// `sizeof(struct cn_msg)` without its flexible `data`.
const CN_MSG_LEN: usize = 20;
/// `proc_event` up to `event_data`: `what`, `cpu`, `timestamp_ns`.
const PROC_EVENT_HEADER: usize = 16;

const NLMSG_NOOP: u16 = libc::NLMSG_NOOP as u16;
const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;
const NLMSG_DONE: u16 = libc::NLMSG_DONE as u16;
const NLMSG_OVERRUN: u16 = libc::NLMSG_OVERRUN as u16;

/// What is wrong with a datagram that claims to come from the proc connector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A structure runs past the end of the bytes that contain it.
    #[error("{what} at byte {offset} needs {need} bytes, only {have} are there")]
    Short {
        what: &'static str,
        offset: usize,
        need: usize,
        have: usize,
    },
    /// The kernel answered a request with `NLMSG_ERROR` and a non-zero errno.
    #[error("netlink error message: {}", std::io::Error::from_raw_os_error(*.errno))]
    Netlink { errno: i32 },
}

/// `NLMSG_ALIGN(len)`.
const fn nlmsg_align(len: usize) -> usize {
    (len + NLMSG_ALIGNTO - 1) & !(NLMSG_ALIGNTO - 1)
}

fn take<const N: usize>(
    buf: &[u8],
    at: usize,
    what: &'static str,
    base: usize,
) -> Result<[u8; N], WireError> {
    buf.get(at..at + N)
        .and_then(|s| s.try_into().ok())
        .ok_or(WireError::Short {
            what,
            offset: base + at,
            need: N,
            have: buf.len().saturating_sub(at),
        })
}

fn u16_at(buf: &[u8], at: usize, what: &'static str, base: usize) -> Result<u16, WireError> {
    take::<2>(buf, at, what, base).map(u16::from_ne_bytes)
}

fn u32_at(buf: &[u8], at: usize, what: &'static str, base: usize) -> Result<u32, WireError> {
    take::<4>(buf, at, what, base).map(u32::from_ne_bytes)
}

fn i32_at(buf: &[u8], at: usize, what: &'static str, base: usize) -> Result<i32, WireError> {
    take::<4>(buf, at, what, base).map(i32::from_ne_bytes)
}

/// Parses one datagram read from a proc connector socket.
///
/// A datagram may hold several netlink messages (each padded to 4 bytes).
/// Messages for other connectors, `NLMSG_NOOP`, acks (`NLMSG_ERROR` with errno 0,
/// `PROC_EVENT_NONE`) and event kinds this module does not know are skipped;
/// `NLMSG_OVERRUN` becomes [`Received::Lost`]. Anything that does not fit
/// its declared length is an error: the caller decides whether to go on.
pub fn parse_datagram(buf: &[u8]) -> Result<Vec<Received>, WireError> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < buf.len() {
        let rest = &buf[offset..];
        let len = u32_at(rest, 0, "nlmsghdr", offset)? as usize;
        let kind = u16_at(rest, 4, "nlmsghdr", offset)?;
        take::<NLMSG_HDRLEN>(rest, 0, "nlmsghdr", offset)?;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Err(WireError::Short {
                what: "netlink message",
                offset,
                need: len.max(NLMSG_HDRLEN),
                have: rest.len(),
            });
        }
        let payload = &rest[NLMSG_HDRLEN..len];
        let base = offset + NLMSG_HDRLEN;
        match kind {
            NLMSG_NOOP => {}
            NLMSG_ERROR => {
                // struct nlmsgerr { int error; struct nlmsghdr msg; }: 0 is an ack.
                let error = i32_at(payload, 0, "nlmsgerr", base)?;
                if error != 0 {
                    return Err(WireError::Netlink {
                        errno: error.saturating_neg(),
                    });
                }
            }
            NLMSG_OVERRUN => out.push(Received::Lost),
            // The connector sends every event as a one-message NLMSG_DONE
            // (drivers/connector/connector.c, cn_netlink_send_mult); take
            // any other type the same way and let the cn_msg id decide.
            _ => {
                if let Some(event) = parse_cn_msg(payload, base)? {
                    out.push(Received::Event(event));
                }
            }
        }
        offset += nlmsg_align(len);
    }
    Ok(out)
}

/// Parses a `cn_msg`; `None` for another connector or a non-event.
fn parse_cn_msg(msg: &[u8], base: usize) -> Result<Option<ProcEvent>, WireError> {
    take::<CN_MSG_LEN>(msg, 0, "cn_msg", base)?;
    let idx = u32_at(msg, 0, "cn_msg", base)?;
    let val = u32_at(msg, 4, "cn_msg", base)?;
    if (idx, val) != (libc::CN_IDX_PROC, libc::CN_VAL_PROC) {
        return Ok(None);
    }
    let len = u16_at(msg, 16, "cn_msg", base)? as usize;
    let data = msg
        .get(CN_MSG_LEN..CN_MSG_LEN + len)
        .ok_or(WireError::Short {
            what: "cn_msg data",
            offset: base + CN_MSG_LEN,
            need: len,
            have: msg.len() - CN_MSG_LEN,
        })?;
    parse_proc_event(data, base + CN_MSG_LEN)
}

/// Parses a `proc_event`; `None` for `PROC_EVENT_NONE` (the ack of a
/// listen/ignore request) and for kinds added after this code was written.
fn parse_proc_event(ev: &[u8], base: usize) -> Result<Option<ProcEvent>, WireError> {
    let what = u32_at(ev, 0, "proc_event", base)?;
    let cpu = u32_at(ev, 4, "proc_event", base)?;
    let timestamp_ns = take::<8>(ev, 8, "proc_event", base).map(u64::from_ne_bytes)?;
    let d = &ev[PROC_EVENT_HEADER..];
    let b = base + PROC_EVENT_HEADER;
    let i = |at: usize, what: &'static str| i32_at(d, at, what, b);
    let u = |at: usize, what: &'static str| u32_at(d, at, what, b);
    let kind = match what {
        libc::PROC_EVENT_FORK => ProcEventKind::Fork {
            parent_pid: i(0, "fork event")?,
            parent_tgid: i(4, "fork event")?,
            child_pid: i(8, "fork event")?,
            child_tgid: i(12, "fork event")?,
        },
        libc::PROC_EVENT_EXEC => ProcEventKind::Exec {
            pid: i(0, "exec event")?,
            tgid: i(4, "exec event")?,
        },
        libc::PROC_EVENT_UID => ProcEventKind::Uid {
            pid: i(0, "uid event")?,
            tgid: i(4, "uid event")?,
            ruid: u(8, "uid event")?,
            euid: u(12, "uid event")?,
        },
        libc::PROC_EVENT_GID => ProcEventKind::Gid {
            pid: i(0, "gid event")?,
            tgid: i(4, "gid event")?,
            rgid: u(8, "gid event")?,
            egid: u(12, "gid event")?,
        },
        libc::PROC_EVENT_SID => ProcEventKind::Sid {
            pid: i(0, "sid event")?,
            tgid: i(4, "sid event")?,
        },
        libc::PROC_EVENT_PTRACE => ProcEventKind::Ptrace {
            pid: i(0, "ptrace event")?,
            tgid: i(4, "ptrace event")?,
            tracer_pid: i(8, "ptrace event")?,
            tracer_tgid: i(12, "ptrace event")?,
        },
        libc::PROC_EVENT_COMM => {
            let comm = take::<16>(d, 8, "comm event", b)?;
            let end = comm.iter().position(|&c| c == 0).unwrap_or(comm.len());
            ProcEventKind::Comm {
                pid: i(0, "comm event")?,
                tgid: i(4, "comm event")?,
                comm: comm[..end].to_vec(),
            }
        }
        libc::PROC_EVENT_COREDUMP => ProcEventKind::Coredump {
            pid: i(0, "coredump event")?,
            tgid: i(4, "coredump event")?,
            parent_pid: i(8, "coredump event")?,
            parent_tgid: i(12, "coredump event")?,
        },
        libc::PROC_EVENT_EXIT => ProcEventKind::Exit {
            pid: i(0, "exit event")?,
            tgid: i(4, "exit event")?,
            exit_code: i(8, "exit event")?,
            exit_signal: i(12, "exit event")?,
            parent_pid: i(16, "exit event")?,
            parent_tgid: i(20, "exit event")?,
        },
        _ => return Ok(None),
    };
    Ok(Some(ProcEvent {
        timestamp_ns,
        cpu,
        kind,
    }))
}

/// The request that turns the proc connector on (`PROC_CN_MCAST_LISTEN`) or
/// off (`PROC_CN_MCAST_IGNORE`) for the sending socket: a netlink message to
/// the kernel (port 0) carrying a `cn_msg` whose data is the 4-byte op.
///
/// The 4-byte form is the one every kernel accepts; 6.6 added an 8-byte
/// `proc_input` with an event filter, which we do not need.
pub fn mcast_request(op: u32, seq: u32) -> [u8; NLMSG_HDRLEN + CN_MSG_LEN + 4] {
    const LEN: usize = NLMSG_HDRLEN + CN_MSG_LEN + 4;
    let mut m = [0u8; LEN];
    m[0..4].copy_from_slice(&(LEN as u32).to_ne_bytes());
    m[4..6].copy_from_slice(&NLMSG_DONE.to_ne_bytes());
    // flags (6..8) and sender port (12..16) stay 0: the kernel fills the port.
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    let cn = NLMSG_HDRLEN;
    m[cn..cn + 4].copy_from_slice(&libc::CN_IDX_PROC.to_ne_bytes());
    m[cn + 4..cn + 8].copy_from_slice(&libc::CN_VAL_PROC.to_ne_bytes());
    m[cn + 8..cn + 12].copy_from_slice(&seq.to_ne_bytes());
    // ack (cn + 12..16) and flags (cn + 18..20) stay 0.
    m[cn + 16..cn + 18].copy_from_slice(&4u16.to_ne_bytes());
    m[cn + CN_MSG_LEN..].copy_from_slice(&op.to_ne_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds one netlink message around a proc connector event, the way
    /// `cn_netlink_send_mult` does, padded to `NLMSG_ALIGNTO`.
    fn message(what: u32, data: &[u8]) -> Vec<u8> {
        let mut ev = Vec::new();
        ev.extend_from_slice(&what.to_ne_bytes());
        ev.extend_from_slice(&1u32.to_ne_bytes()); // cpu
        ev.extend_from_slice(&123_456_789u64.to_ne_bytes());
        ev.extend_from_slice(data);
        ev.resize(40, 0); // sizeof(struct proc_event)
        connector_message(libc::CN_IDX_PROC, libc::CN_VAL_PROC, &ev)
    }

    fn connector_message(idx: u32, val: u32, data: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        let len = NLMSG_HDRLEN + CN_MSG_LEN + data.len();
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&idx.to_ne_bytes());
        m.extend_from_slice(&val.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.extend_from_slice(&(data.len() as u16).to_ne_bytes());
        m.extend_from_slice(&[0; 2]);
        m.extend_from_slice(data);
        m.resize(nlmsg_align(m.len()), 0);
        m
    }

    fn ints(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_ne_bytes()).collect()
    }

    fn events(buf: &[u8]) -> Vec<ProcEventKind> {
        parse_datagram(buf)
            .unwrap()
            .into_iter()
            .map(|r| match r {
                Received::Event(e) => e.kind,
                Received::Lost => panic!("unexpected loss"),
            })
            .collect()
    }

    #[test]
    fn parses_fork_exec_exit_with_header_fields() {
        let mut buf = message(libc::PROC_EVENT_FORK, &ints(&[10, 10, 11, 11]));
        buf.extend(message(libc::PROC_EVENT_EXEC, &ints(&[11, 11])));
        buf.extend(message(
            libc::PROC_EVENT_EXIT,
            &ints(&[11, 11, 3 << 8, libc::SIGCHLD, 10, 10]),
        ));
        let got = parse_datagram(&buf).unwrap();
        assert_eq!(got.len(), 3);
        let Received::Event(first) = &got[0] else {
            panic!("{got:?}")
        };
        assert_eq!((first.cpu, first.timestamp_ns), (1, 123_456_789));
        assert_eq!(
            events(&buf),
            vec![
                ProcEventKind::Fork {
                    parent_pid: 10,
                    parent_tgid: 10,
                    child_pid: 11,
                    child_tgid: 11
                },
                ProcEventKind::Exec { pid: 11, tgid: 11 },
                ProcEventKind::Exit {
                    pid: 11,
                    tgid: 11,
                    exit_code: 3 << 8,
                    exit_signal: libc::SIGCHLD,
                    parent_pid: 10,
                    parent_tgid: 10
                },
            ]
        );
    }

    #[test]
    fn comm_keeps_bytes_up_to_nul() {
        let mut data = ints(&[5, 5]);
        data.extend_from_slice(b"w\xffrker\0\0\0\0\0\0\0\0\0\0");
        assert_eq!(
            events(&message(libc::PROC_EVENT_COMM, &data)),
            vec![ProcEventKind::Comm {
                pid: 5,
                tgid: 5,
                comm: b"w\xffrker".to_vec()
            }]
        );
    }

    #[test]
    fn skips_acks_unknown_kinds_other_connectors_and_noops() {
        let mut buf = message(libc::PROC_EVENT_NONE, &ints(&[0]));
        buf.extend(message(0x0100_0000, &ints(&[1, 2, 3, 4])));
        buf.extend(connector_message(
            libc::CN_W1_IDX,
            libc::CN_W1_VAL,
            &[1, 2, 3],
        ));
        let mut noop = vec![0u8; NLMSG_HDRLEN];
        noop[0..4].copy_from_slice(&(NLMSG_HDRLEN as u32).to_ne_bytes());
        noop[4..6].copy_from_slice(&NLMSG_NOOP.to_ne_bytes());
        buf.extend(&noop);
        let mut ack = noop.clone();
        ack[0..4].copy_from_slice(&(NLMSG_HDRLEN as u32 + 4).to_ne_bytes());
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack.extend_from_slice(&0i32.to_ne_bytes());
        buf.extend(&ack);
        buf.extend(message(libc::PROC_EVENT_EXEC, &ints(&[7, 7])));
        assert_eq!(events(&buf), vec![ProcEventKind::Exec { pid: 7, tgid: 7 }]);
        assert_eq!(parse_datagram(&[]).unwrap(), vec![]);
    }

    #[test]
    fn overrun_message_is_a_loss_marker() {
        let mut m = vec![0u8; NLMSG_HDRLEN];
        m[0..4].copy_from_slice(&(NLMSG_HDRLEN as u32).to_ne_bytes());
        m[4..6].copy_from_slice(&NLMSG_OVERRUN.to_ne_bytes());
        assert_eq!(parse_datagram(&m).unwrap(), vec![Received::Lost]);
    }

    #[test]
    fn netlink_error_is_reported() {
        let mut m = vec![0u8; NLMSG_HDRLEN];
        m[0..4].copy_from_slice(&(NLMSG_HDRLEN as u32 + 4).to_ne_bytes());
        m[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&(-libc::EPERM).to_ne_bytes());
        assert_eq!(
            parse_datagram(&m),
            Err(WireError::Netlink { errno: libc::EPERM })
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut buf = message(libc::PROC_EVENT_FORK, &ints(&[10, 10, 11, 11]));
        buf.extend(message(
            libc::PROC_EVENT_EXIT,
            &ints(&[11, 11, 0, 17, 10, 10]),
        ));
        for cut in 1..buf.len() {
            // Cuts on a message boundary leave a whole, valid datagram.
            if cut == buf.len() / 2 {
                assert!(parse_datagram(&buf[..cut]).is_ok());
                continue;
            }
            assert!(
                parse_datagram(&buf[..cut]).is_err(),
                "cut at {cut} of {} parsed",
                buf.len()
            );
        }
    }

    #[test]
    fn lying_lengths_are_errors() {
        // nlmsg_len shorter than the header, longer than the datagram.
        for bad in [0u32, 15, 1000] {
            let mut buf = message(libc::PROC_EVENT_EXEC, &ints(&[7, 7]));
            buf[0..4].copy_from_slice(&bad.to_ne_bytes());
            assert!(parse_datagram(&buf).is_err(), "nlmsg_len {bad}");
        }
        // cn_msg.len past the netlink message.
        let mut buf = message(libc::PROC_EVENT_EXEC, &ints(&[7, 7]));
        buf[NLMSG_HDRLEN + 16..NLMSG_HDRLEN + 18].copy_from_slice(&500u16.to_ne_bytes());
        assert!(parse_datagram(&buf).is_err());
        // cn_msg.len too short for the event it announces.
        let mut buf = message(libc::PROC_EVENT_EXIT, &ints(&[7, 7, 0, 17, 1, 1]));
        buf[NLMSG_HDRLEN + 16..NLMSG_HDRLEN + 18].copy_from_slice(&20u16.to_ne_bytes());
        assert!(matches!(
            parse_datagram(&buf),
            Err(WireError::Short {
                what: "exit event",
                ..
            })
        ));
    }

    #[test]
    fn listen_request_layout() {
        let m = mcast_request(libc::PROC_CN_MCAST_LISTEN, 7);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 40);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), NLMSG_DONE);
        assert_eq!(u32::from_ne_bytes(m[16..20].try_into().unwrap()), 1);
        assert_eq!(u32::from_ne_bytes(m[20..24].try_into().unwrap()), 1);
        assert_eq!(u16::from_ne_bytes(m[32..34].try_into().unwrap()), 4);
        assert_eq!(u32::from_ne_bytes(m[36..40].try_into().unwrap()), 1);
    }
}
