#!/usr/bin/env python3
"""Hostile and odd HTTP clients against a running `netnet serve` (Tests/NetnetCLITests/HostileClientTests.swift).

  hostile-clients.py requests PORT            one JSON object: case name -> {"status", "type", "body"}
  hostile-clients.py sse PORT PID SECONDS [READERS] [STALLED]
                                              READERS SSE clients that read, STALLED that never read
                                              (tiny receive buffers), for SECONDS; one JSON object with
                                              what the readers got and the server's RSS and inferred
                                              frames sampled each second.
Standard library only; every socket has a timeout, so a hung server fails the caller, not this script.
"""
import json
import select
import socket
import sys
import time


def exchange(port, raw, timeout=10.0):
    """Sends `raw`, reads the answer until the server closes or the response is complete."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(raw)
        except OSError:
            pass  # the server may answer and close before it has read everything
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = None
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if length is not None and len(body) >= length:
                    break
        return data
    finally:
        s.close()


def parse(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else None
    ctype = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-type":
            ctype = value.strip().decode("latin-1")
    return {"status": status, "type": ctype, "body": body.decode("utf-8", "replace")[:400], "length": len(body)}


def requests(port):
    get = lambda target, extra=b"": b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + b"\r\n"
    cases = {
        "long_target_9k": get(b"/api/streams/" + b"a" * 9000 + b"/counts"),
        "long_target_200k": get(b"/api/streams/" + b"a" * 200000 + b"/counts"),
        "long_header_40k": get(b"/healthz", b"X-Big: " + b"b" * 40000 + b"\r\n"),
        "long_header_200k": get(b"/healthz", b"X-Big: " + b"b" * 200000 + b"\r\n"),
        "many_headers": get(b"/healthz", b"".join(b"X-%d: y\r\n" % i for i in range(500))),
        "bad_percent_path": get(b"/api/streams/%zz/counts"),
        "truncated_percent_path": get(b"/api/streams/a%2/snapshot.jpg"),
        "bad_percent_query": get(b"/api/events?stream=%zz"),
        "invalid_utf8_query": get(b"/api/events?stream=%ff%fe"),
        "traversal_encoded": get(b"/api/streams/..%2F..%2Fetc%2Fpasswd/counts"),
        "traversal_plain": get(b"/api/streams/../../etc/passwd/snapshot.jpg"),
        "traversal_dots": get(b"/api/streams/../counts"),
        "nul_in_id": get(b"/api/streams/a%00b/snapshot.jpg"),
        "long_id": get(b"/api/streams/" + b"x" * 5000 + b"/counts"),
        "unknown_id": get(b"/api/streams/nosuch/counts"),
        "healthz_after": get(b"/healthz"),
    }
    out = {}
    for name, raw in cases.items():
        try:
            out[name] = parse(exchange(port, raw))
        except OSError as error:
            out[name] = {"status": None, "error": str(error)}
    print(json.dumps(out))


def proc_status(pid, field):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None


def get_json(port, path):
    data = exchange(port, b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    return json.loads(data.partition(b"\r\n\r\n")[2] or b"null")


def inferred(port):
    streams = get_json(port, "/api/streams")["streams"]
    return sum(s["frames_inferred"] for s in streams)


def sse(port, pid, seconds, readers, stalled):
    request = b"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    quiet = []
    for _ in range(stalled):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # before connect: a tiny window
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        s.sendall(request)
        quiet.append(s)
    active = {}
    for _ in range(readers):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(request)
        s.setblocking(False)
        active[s.fileno()] = [s, 0, b""]   # socket, events seen, partial text
    poller = select.poll()
    for fd in active:
        poller.register(fd, select.POLLIN)
    samples = []
    start = time.monotonic()
    next_sample = start
    closed = 0
    while time.monotonic() - start < seconds:
        now = time.monotonic()
        if now >= next_sample:
            samples.append({"t": round(now - start, 2), "rss_kb": proc_status(pid, "VmRSS"), "inferred": inferred(port)})
            next_sample += 1.0
        for fd, _ in poller.poll(100):
            entry = active[fd]
            try:
                chunk = entry[0].recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                poller.unregister(fd)
                closed += 1
                continue
            text = entry[2] + chunk
            entry[1] += text.count(b"\nevent: ") + (1 if text.startswith(b"event: ") else 0)
            entry[2] = text[-16:]
    samples.append({"t": round(time.monotonic() - start, 2), "rss_kb": proc_status(pid, "VmRSS"), "inferred": inferred(port)})
    counts = sorted(entry[1] for entry in active.values())
    metrics = exchange(port, b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").decode("utf-8", "replace")
    for s in quiet:
        s.close()
    for entry in active.values():
        entry[0].close()
    print(json.dumps({"readers": readers, "stalled": stalled, "reader_events_min": counts[0] if counts else 0,
                      "reader_events_max": counts[-1] if counts else 0, "readers_closed": closed,
                      "samples": samples, "metrics": metrics}))


if __name__ == "__main__":
    if sys.argv[1] == "requests":
        requests(int(sys.argv[2]))
    else:
        sse(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]),
            int(sys.argv[5]) if len(sys.argv) > 5 else 200, int(sys.argv[6]) if len(sys.argv) > 6 else 50)
