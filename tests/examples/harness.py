"""Shared by the example-server tests: start a server binary on a free loopback port, stop it by PID,
and record checks."""
import signal
import subprocess
import sys

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


def finish():
    sys.exit(1 if failures else 0)
