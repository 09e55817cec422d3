#!/usr/bin/env python3
"""Drives the echo-server binary from Python's standard sockets (a client not written with corio):
echo of 1 B .. 1 MiB, --max-conns shedding, --idle-timeout, and SIGTERM with a connection open (what was
echoed arrives in full, then the server exits 0).   usage: echo_server_test.py path/to/echo-server"""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from harness import check, finish, refused_soon, stall_then_drain, start as start_server, stop, wait

server_bin = sys.argv[1]


def start(*flags):
    return start_server(server_bin, *flags)


def echo(sock, data, after_send=None):
    """Sends data while reading the echo on another thread, calls after_send() once all is sent, and
    returns what came back."""
    got = bytearray()

    def reader():
        while len(got) < len(data):
            chunk = sock.recv(1 << 16)
            if not chunk:
                return
            got.extend(chunk)

    t = threading.Thread(target=reader)
    t.start()
    sock.sendall(data)
    if after_send:
        after_send()
    t.join(timeout=10)
    return bytes(got)


# Echo of every size, over two reactors.
p, port = start("--reactors", "2")
with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
    for size in (1, 100, 4096, 65536, 1 << 20):
        data = bytes((i * 7 + i // 251) % 256 for i in range(size))
        check(echo(s, data) == data, f"echo of {size} bytes")
rc, err = stop(p)
check(rc == 0, f"SIGTERM exits 0 (got {rc})")
check("stopped" in err, "prints its counters on the way out")

# --max-conns: the third connection is accepted and closed at once; the first two keep working.
p, port = start("--max-conns", "2", "--reactors", "1")
a = socket.create_connection(("127.0.0.1", port), timeout=5)
b = socket.create_connection(("127.0.0.1", port), timeout=5)
check(echo(a, b"a") == b"a" and echo(b, b"b") == b"b", "connections under the limit are served")
c = socket.create_connection(("127.0.0.1", port), timeout=5)
check(c.recv(1) == b"", "a connection over --max-conns is closed at once")
check(echo(a, b"still") == b"still", "the server stays responsive while shedding")
for s in (a, b, c):
    s.close()
rc, err = stop(p)
check(rc == 0 and "shed 1" in err, f"shedding is counted ({err.strip()})")

# --idle-timeout: a silent connection is closed after about a second; an active one is not.
p, port = start("--idle-timeout", "1", "--reactors", "1")
silent = socket.create_connection(("127.0.0.1", port), timeout=5)
t0 = time.monotonic()
check(silent.recv(1) == b"", "a silent connection is closed")
waited = time.monotonic() - t0
check(0.8 < waited < 4, f"after the idle timeout (closed after {waited:.2f} s)")
silent.close()

# A client that sends and never reads its echo is closed by the idle timeout too.
sent, received = stall_then_drain(port, b"s" * 65536)
check(received < sent, f"a client that stops reading is closed by the idle timeout ({received} of {sent} B came back)")

# SIGTERM while a request is in flight: the server stops accepting but finishes echoing what it was sent.
busy = socket.create_connection(("127.0.0.1", port), timeout=5)
payload = b"z" * 2_000_000
got = echo(busy, payload, after_send=lambda: p.send_signal(signal.SIGTERM))
check(got == payload, "data sent before SIGTERM is echoed in full while draining")
refused = refused_soon(port)
check(refused, "a new connection during the drain is refused (the listeners are closed)")
busy.close()
rc = wait(p)
check(rc == 0, f"graceful shutdown with a connection open exits 0 (got {rc})")

# A connection that stays open holds the drain until --drain-timeout; a second signal ends it at once.
p, port = start("--drain-timeout", "60", "--reactors", "2")
held = socket.create_connection(("127.0.0.1", port), timeout=5)
check(echo(held, b"held") == b"held", "a connection is open before the first signal")
p.send_signal(signal.SIGTERM)
check(refused_soon(port), "the first signal starts the drain (the listeners close)")
time.sleep(0.3)
check(p.poll() is None, "the drain waits for the open connection")
t0 = time.monotonic()
p.send_signal(signal.SIGINT)
rc, err = wait(p), p.stderr.read()
took = time.monotonic() - t0
check(rc == 1 and took < 2, f"a second signal ends the drain at once, exit 1: connections were dropped (exit {rc} after {took:.2f} s)")
check("drain cut short" in err and "open at exit 0" in err, f"and says so: {err.strip().splitlines()[-1] if err.strip() else ''}")
check(held.recv(1) == b"", "the held connection is closed")
held.close()

# A rolling restart: a second server shares the port (--reuse-port), the first is told to stop while a
# client of its own is still open; new clients are all served by the second, none left hanging.
old, port = start("--reactors", "2", "--drain-timeout", "30")
mine = socket.create_connection(("127.0.0.1", port), timeout=5)
check(echo(mine, b"mine") == b"mine", "the old server serves its client")
new = start_server(server_bin, "--listen", f"127.0.0.1:{port}", "--reuse-port", "--reactors", "2")[0]
old.send_signal(signal.SIGTERM)
time.sleep(0.5)  # the signal reaches the old server, which closes its listeners
served = 0
for i in range(40):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
            c.settimeout(2)
            served += echo(c, b"r%d" % i) == b"r%d" % i
    except OSError:
        pass
check(served == 40, f"during a rolling restart every new client is served ({served} of 40)")
check(old.poll() is None, "the old server is still draining its own client")
mine.close()
check(wait(old) == 0, "and exits 0 once that client leaves")
rc, _ = stop(new)
check(rc == 0, f"the new server exits 0 (got {rc})")

# More reactors than CPUs: a warning, then it serves.
many = len(os.sched_getaffinity(0)) + 2
p, port = start("--reactors", str(many))
with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
    check(echo(s, b"many") == b"many", f"--reactors {many} serves")
rc, err = stop(p)
check(rc == 0 and f"{many} reactors pinned to" in err, f"--reactors beyond the CPUs is warned about: {err.splitlines()[0]}")

# Bad flags: clear errors, exit 2.
bad = subprocess.run([server_bin, "--listen", "127.0.0.1:99999"], capture_output=True, text=True, timeout=10)
check(bad.returncode == 2 and "port out of range" in bad.stderr, f"bad --listen is refused: {bad.stderr.strip()}")
bad = subprocess.run([server_bin, "--max-conns", "lots"], capture_output=True, text=True, timeout=10)
check(bad.returncode == 2 and "not a valid value" in bad.stderr, f"bad number is refused: {bad.stderr.strip()}")
bad = subprocess.run([server_bin, "--backend", "kqueue"], capture_output=True, text=True, timeout=10)
check(bad.returncode == 2 and "--backend" in bad.stderr, f"unknown backend is refused: {bad.stderr.strip()}")

finish()
