"""Shared by the example-server tests: start a server binary on a free loopback port, stop it by PID,
and record checks."""
import signal
import socket
import subprocess
import sys
import time

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def start(server_bin, *flags):
    """Starts the server on 127.0.0.1 port 0; returns (process, port) from its 'listening on' line."""
    p = subprocess.Popen([server_bin, "--listen", "127.0.0.1:0", *flags], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline().strip()
    if not line.startswith("listening on 127.0.0.1:"):
        p.kill()
        sys.exit(f"unexpected first line from {server_bin}: {line!r}")
    return p, int(line.rsplit(":", 1)[1])


def wait(p):
    try:
        return p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        return "hung"


def stop(p):
    """SIGTERM, then the exit code ('hung' if it did not exit within 10 s) and what it wrote to stderr."""
    p.send_signal(signal.SIGTERM)
    rc = wait(p)
    return rc, p.stderr.read()


def refused_soon(port, within_s=5.0):
    """Whether connecting to `port` is refused within `within_s` (a signal takes a moment to arrive)."""
    until = time.monotonic() + within_s
    while time.monotonic() < until:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except ConnectionRefusedError:
            return True
        except OSError:
            pass
        time.sleep(0.02)
    return False


def stall_then_drain(port, chunk, stall_s=4.0):
    """Sends `chunk` again and again for stall_s seconds without reading a byte, then reads until the end of
    the stream. Returns (sent, received): a server whose write deadline closed the stalled connection sent
    back less than it was sent (one without would echo everything once the client reads)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(0.5)
    sent, until = 0, time.monotonic() + stall_s
    while time.monotonic() < until:
        try:
            sent += s.send(chunk)
        except (socket.timeout, TimeoutError):
            pass
        except OSError:
            break
    received, until = 0, time.monotonic() + 15
    s.settimeout(5)
    try:
        while time.monotonic() < until and (data := s.recv(1 << 20)):
            received += len(data)
    except OSError:
        pass
    s.close()
    return sent, received


def finish():
    sys.exit(1 if failures else 0)
