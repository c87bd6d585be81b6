"""Network probes run inside a world by tests/tests/egress.rs: one line of
output per probe, `PROBE<tab>RESULT<tab>MILLISECONDS`, RESULT `ok:...` or `err:ERRNO`.

  tcp HOST PORT            connect, read what the server says
  udp HOST PORT            send "ping", wait 1 s for the echo
  resolve NAME             getaddrinfo through the world's resolv.conf
  dns SERVER NAME udp|tcp  a raw A query to SERVER:53, not the world's resolver
  icmp HOST ping|raw       an ICMP echo, wait 1 s for the reply
  send HOST PORT BYTES     connect and send BYTES bytes
  udp_burst HOST FIRST COUNT  a datagram to each of COUNT ports from FIRST
  until_refused HOST PORT SECONDS
                           connect every 100 ms until refused: after how long
"""
import errno
import socket
import struct
import sys
import time


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def err(e):
    return "err:" + errno.errorcode.get(e.errno, str(e.errno)) if e.errno else "err:" + type(e).__name__


def tcp(host, port):
    with socket.socket(family(host), socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect((host, int(port)))
        return "ok:" + s.recv(64).decode().strip()


def udp(host, port):
    with socket.socket(family(host), socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        s.sendto(b"ping", (host, int(port)))
        return "ok:" + s.recv(64).decode().strip()


def resolve(name):
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as e:
        return "err:" + {socket.EAI_NONAME: "EAI_NONAME", socket.EAI_AGAIN: "EAI_AGAIN"}.get(e.errno, str(e.errno))
    return "ok:" + ",".join(sorted({i[4][0] for i in infos}))


def dns_query(name):
    header = struct.pack(">HHHHHH", 0x5b57, 0x0100, 1, 0, 0, 0)
    labels = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    return header + labels + struct.pack(">HH", 1, 1)


def dns(server, name, transport):
    query = dns_query(name)
    if transport == "udp":
        with socket.socket(family(server), socket.SOCK_DGRAM) as s:
            s.settimeout(1)
            s.sendto(query, (server, 53))
            answer = s.recv(512)
    else:
        with socket.socket(family(server), socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect((server, 53))
            s.sendall(struct.pack(">H", len(query)) + query)
            answer = s.recv(514)[2:]
    return "ok:rcode=%d" % (answer[3] & 15)


def icmp(host, kind):
    """An ICMP echo: `ping` over an ICMP datagram socket (the kernel fills in
    the id and checksum; allowed by ping_group_range), or `raw` (needs
    CAP_NET_RAW)."""
    v6 = ":" in host
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    sock_type = socket.SOCK_RAW if kind == "raw" else socket.SOCK_DGRAM
    with socket.socket(family(host), sock_type, proto) as s:
        s.settimeout(1)
        echo = 128 if v6 else 8
        body = struct.pack(">BBHHH", echo, 0, 0, 0x5b57, 1) + b"substrate"
        s.sendto(body, (host, 0))
        while True:
            reply = s.recv(256)
            offset = (reply[0] & 15) * 4 if kind == "raw" and not v6 else 0
            if reply[offset] == (129 if v6 else 0):
                return "ok:echo-reply"


def send(host, port, count):
    with socket.socket(family(host), socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect((host, int(port)))
        chunk = b"x" * 4096
        left = int(count)
        while left > 0:
            left -= s.send(chunk[:left])
        return "ok:sent=" + count


def udp_burst(host, first, count):
    """One datagram to each of COUNT ports from FIRST: COUNT new flows."""
    with socket.socket(family(host), socket.SOCK_DGRAM) as s:
        for port in range(int(first), int(first) + int(count)):
            s.sendto(b"x", (host, port))
    return "ok:sent=" + count


def until_refused(host, port, seconds):
    start = time.monotonic()
    while time.monotonic() - start < float(seconds):
        try:
            with socket.socket(family(host), socket.SOCK_STREAM) as s:
                s.settimeout(1)
                s.connect((host, int(port)))
        except OSError as e:
            return "ok:refused-after=%.1f:%s" % (time.monotonic() - start, err(e))
        time.sleep(0.1)
    return "err:never-refused"


PROBES = {"udp_burst": udp_burst, "send": send, "until_refused": until_refused, "tcp": tcp, "udp": udp, "resolve": resolve, "dns": dns, "icmp": icmp}

args = sys.argv[1:]
while args:
    name = args.pop(0)
    probe = PROBES[name]
    count = probe.__code__.co_argcount
    params, args = args[:count], args[count:]
    start = time.monotonic()
    try:
        result = probe(*params)
    except OSError as e:
        result = err(e)
    ms = (time.monotonic() - start) * 1000
    print(name + " " + " ".join(params), result, "%.1f" % ms, sep="\t", flush=True)
