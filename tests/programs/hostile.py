"""A process inside a world attacking its span socket: garbage, an
oversized message, a forged pid, fds that are not rings, an unsealed ring,
and a well-formed ring full of nonsense records. Prints what it sent."""
import fcntl
import mmap
import os
import socket
import struct
import sys
import time

SOCKET = "/.substrate/span.sock"
HELLO_MAGIC = int.from_bytes(b"SBHL", "little")
RING_MAGIC = int.from_bytes(b"SBRG", "little")
SLOTS, SLOT_BYTES, HEADER_BYTES = 1024, 512, 256
RING_BYTES = HEADER_BYTES + SLOTS * SLOT_BYTES
EXEC, FORK = 1, 2


def send(payload, fds=()):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.connect(SOCKET)
    if fds:
        socket.send_fds(s, [payload], list(fds))
    else:
        s.send(payload)
    s.close()


def hello(kind, pid):
    return struct.pack("<IHHIIQIIIII4x", HELLO_MAGIC, 1, kind, pid, 0,
                       time.time_ns(), 0, 0, 0, 0, 0)


def ring(sealed=True, records=0):
    fd = os.memfd_create("hostile", os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, RING_BYTES)
    m = mmap.mmap(fd, RING_BYTES)
    m[0:16] = struct.pack("<IIII", RING_MAGIC, 1, SLOTS, SLOT_BYTES)
    for i in range(records):
        at = HEADER_BYTES + i * SLOT_BYTES
        # seq "written" for lap 0, then kind 99 (no such kind).
        m[at:at + 8] = struct.pack("<Q", 1)
        m[at + 8] = 99
    if sealed:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                    fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
    return fd, m


send(b"\x00garbage\xff" * 3)
send(b"x" * 70000)
fd, _m1 = ring()
send(hello(FORK, 4242), [fd])           # a pid that is not ours
send(hello(FORK, os.getpid()))          # a hello without a ring
with open("/etc/hostname", "rb") as f:  # an fd that is not a memfd
    send(hello(FORK, os.getpid()), [f.fileno()])
fd2, _m2 = ring(sealed=False)
send(hello(FORK, os.getpid()), [fd2])   # unsealed: could be cut under the monitor
fd3, m3 = ring(records=50)
send(hello(FORK, os.getpid()), [fd3])   # accepted, but its records are nonsense
time.sleep(0.3)
print("hostile done", flush=True)
