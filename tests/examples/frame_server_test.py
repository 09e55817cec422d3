#!/usr/bin/env python3
"""Drives frame-server from Python's standard sockets and with frame-client: frames of several sizes,
zero-length, pipelined frames, an oversized frame (connection closed, server keeps serving), a truncated
frame, and SIGTERM.   usage: frame_server_test.py path/to/frame-server path/to/frame-client"""
import socket
import struct
import subprocess
import sys

from harness import check, finish, start, stop

server_bin, client_bin = sys.argv[1], sys.argv[2]


def recv_exact(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data.extend(chunk)
    return bytes(data)


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def read_frame(sock):
    head = recv_exact(sock, 4)
    if len(head) < 4:
        return None
    return recv_exact(sock, struct.unpack(">I", head)[0])


p, port = start(server_bin, "--max-frame", "65536", "--reactors", "2")
with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
    for size in (0, 1, 1000, 65536):
        data = bytes(i % 251 for i in range(size))
        s.sendall(frame(data))
        check(read_frame(s) == data, f"frame of {size} bytes echoed")
    s.sendall(b"".join(frame(b"p%d" % i) for i in range(50)))  # pipelined
    check(all(read_frame(s) == b"p%d" % i for i in range(50)), "50 pipelined frames echoed in order")

with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
    s.sendall(frame(b"first") + frame(b"second")[:5])  # a whole frame, then part of the next
    s.settimeout(1)
    check(read_frame(s) == b"first", "a reply leaves while the next frame is still arriving")
    s.sendall(frame(b"second")[5:])
    check(read_frame(s) == b"second", "...and the rest of that frame is answered")

with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
    s.sendall(struct.pack(">I", 1 << 30))
    try:
        closed = s.recv(1) == b""
    except ConnectionResetError:
        closed = True
    check(closed, "a frame over --max-frame closes the connection")

with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
    s.sendall(struct.pack(">I", 100) + b"only ten..")
    s.shutdown(socket.SHUT_WR)
    check(s.recv(1) == b"", "a truncated frame closes the connection")

client = subprocess.run([client_bin, "--target", f"127.0.0.1:{port}", "--frames", "500", "--size", "512",
                         "--conns", "8"], capture_output=True, text=True, timeout=60)
check(client.returncode == 0 and "4000 of 4000 frames" in client.stdout,
      f"frame-client verifies every echo after the bad clients: {client.stdout.strip()} {client.stderr.strip()}")

rc, err = stop(p)
check(rc == 0, f"SIGTERM exits 0 (got {rc})")
check("exceeds the limit of 65536" in err, "the oversized frame is reported by the server")
check("truncated frame" in err, "the truncated frame is reported by the server")

refused = subprocess.run([client_bin, "--target", f"127.0.0.1:{port}", "--frames", "1"], capture_output=True,
                         text=True, timeout=30)
check(refused.returncode == 1 and "Connection refused" in refused.stderr,
      f"frame-client reports a refused connection: {refused.stderr.strip()}")
finish()
