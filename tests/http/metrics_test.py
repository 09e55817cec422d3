#!/usr/bin/env python3
"""The metrics endpoint from outside: http-server --metrics under known traffic (N connections, M requests,
K bytes) is scraped, checked by promtool (no lint errors) and counted exactly; histograms are cumulative
with +Inf equal to _count; echo-server and tls-echo-server expose theirs too; corio-top runs in a real
terminal (tmux) against a server under load, and its reactors and numbers appear and move.
usage: metrics_test.py HTTP_SERVER ECHO_SERVER TLS_ECHO_SERVER CORIO_TOP CERT_DIR"""
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
from harness import check, finish, stop  # noqa: E402

HTTP_SERVER, ECHO, TLS_ECHO, TOP, CERTS = sys.argv[1:6]
backend = os.environ.get("CORIO_BACKEND", "uring")
SCRAPE = b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n"
REQ = b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n"


def start(binary, *flags):
    """Starts a server with --metrics 127.0.0.1:0; returns (process, port, metrics port)."""
    p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--backend", backend, *flags],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    m = None
    for _ in range(5):  # a server may say other things first (tls-echo-server: kernel TLS)
        m = re.search(r"metrics on http://127\.0\.0\.1:(\d+)/metrics", p.stderr.readline())
        if m:
            break
    line = p.stdout.readline()
    if not m or not line.startswith("listening on 127.0.0.1:"):
        p.kill()
        sys.exit(f"{binary} did not start with --metrics ({line!r})")
    return p, int(line.rsplit(":", 1)[1]), int(m.group(1))


def scrape(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(SCRAPE)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:80]
    return body.decode()


def series(text):
    """{(name, frozenset(labels)): value}"""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def total(s, name, **want):
    return sum(v for (n, labels), v in s.items() if n == name and all((k, w) in labels for k, w in want.items()))


def promtool(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    return r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), (r.stdout + r.stderr).strip()[:300]


# Known traffic on http-server: N connections, M requests each.
N, M = 5, 4
p, port, mport = start(HTTP_SERVER, "--reactors", "2")
for _ in range(N):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    got = b""
    s.sendall(REQ * M)
    deadline = time.monotonic() + 5
    while got.count(b"Hello, World!") < M and time.monotonic() < deadline:
        got += s.recv(65536)
    s.close()
    check(got.count(b"HTTP/1.1 200 OK") == M, f"{M} requests answered on one connection")
scrapes = 0
for _ in range(100):  # the servers see the closes: connections active back to zero
    text = scrape(mport)
    scrapes += 1
    if total(series(text), "corio_net_connections_active") == 1:  # the scrape's own
        break
    time.sleep(0.02)
ok, why = promtool(text)
check(ok, f"promtool check metrics: no errors, no lint ({why})")
s = series(text)
check(total(s, "corio_http_requests_total", server="http", method="GET", code="2xx") == N * M,
      f"requests counted exactly: {total(s, 'corio_http_requests_total', server='http', method='GET', code='2xx')} == {N * M}")
check(total(s, "corio_http_requests_total", server="metrics") == scrapes - 1,
      f"earlier scrapes counted on the metrics server ({total(s, 'corio_http_requests_total', server='metrics')} == {scrapes - 1})")
check(total(s, "corio_net_connections_accepted_total") == N + scrapes,
      f"connections accepted: {total(s, 'corio_net_connections_accepted_total')} == {N} + {scrapes} scrapes")
check(total(s, "corio_net_connections_closed_total", reason="handler_returned") == N + scrapes - 1,
      f"connections closed: {total(s, 'corio_net_connections_closed_total', reason='handler_returned')} == {N + scrapes - 1}")
want_bytes = N * M * len(REQ) + scrapes * len(SCRAPE)
check(total(s, "corio_net_received_bytes_total") == want_bytes,
      f"bytes received exactly: {total(s, 'corio_net_received_bytes_total')} == {want_bytes}")
check(total(s, "corio_net_sent_bytes_total") > 0, "bytes sent counted")
# Histograms: per reactor, buckets never decrease and +Inf equals _count.
monotone, inf_ok = True, True
for r in ("0", "1"):
    buckets = sorted(((float(dict(labels)["le"]) if dict(labels)["le"] != "+Inf" else float("inf")), v)
                     for (n, labels), v in s.items()
                     if n == "corio_http_request_seconds_bucket" and ("server", "http") in labels and ("reactor", r) in labels)
    values = [v for _, v in buckets]
    monotone = monotone and values == sorted(values) and len(values) > 2
    inf_ok = inf_ok and values[-1] == total(s, "corio_http_request_seconds_count", server="http", reactor=r)
check(monotone and inf_ok, "request seconds: buckets monotone, +Inf equals _count, on each reactor")
check(total(s, "corio_http_request_seconds_count", server="http") == N * M, "and _count equals the requests")
check(total(s, "corio_reactor_loop_turns_total") > 0 and total(s, "corio_operations_completed_total") > 0,
      "the reactors' own metrics are there")
rc, err = stop(p)
check(rc == 0, f"http-server stops ({rc})")

# echo-server and tls-echo-server expose theirs too; a TLS handshake is counted.
p, port, mport = start(ECHO)
with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
    c.sendall(b"ping")
    check(c.recv(4) == b"ping", "echo works beside its metrics")
text = scrape(mport)
ok, why = promtool(text)
check(ok and total(series(text), "corio_net_received_bytes_total") >= 4, f"echo-server metrics pass promtool ({why})")
stop(p)
p, port, mport = start(TLS_ECHO, "--cert", os.path.join(CERTS, "server.pem"), "--key", os.path.join(CERTS, "server.key"))
ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.pem"))
with ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost") as c:
    c.sendall(b"hello")
    check(c.recv(5) == b"hello", "TLS echo works")
s = series(scrape(mport))
check(total(s, "corio_tls_handshakes_total", role="server", result="full") == 1,
      f"one full server handshake counted ({total(s, 'corio_tls_handshakes_total', role='server', result='full')})")
check(total(s, "corio_tls_handshake_seconds_count", role="server") == 1, "and timed")
stop(p)

# corio-top in a real terminal (tmux) against a server under load.
if shutil.which("tmux") and shutil.which("wrk"):
    p, port, mport = start(HTTP_SERVER, "--reactors", "2")
    wrk = subprocess.Popen(["wrk", "-t1", "-c8", "-d5s", f"http://127.0.0.1:{port}/plaintext"], stdout=subprocess.DEVNULL)
    session = f"corio-top-test-{os.getpid()}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "20",
                    f"{TOP} --target 127.0.0.1:{mport} --backend {backend}"], check=True)
    try:
        capture = lambda: subprocess.run(["tmux", "capture-pane", "-p", "-t", session],  # noqa: E731
                                         capture_output=True, text=True).stdout
        count = lambda t: int(m.group(1)) if (m := re.search(r"refresh (\d+)", t)) else 0  # noqa: E731
        time.sleep(2.5)
        first = capture()
        # Its next refresh: a second on a quiet machine, longer under a sanitizer with wrk beside it.
        for _ in range(60):
            time.sleep(0.1)
            second = capture()
            if count(second) > count(first):
                break
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session])
        wrk.wait(timeout=15)
    rows = [line for line in second.splitlines() if re.match(r"^[01] +\[", line)]
    check("corio-top" in first and "utilisation" in first and len(rows) == 2, f"corio-top shows both reactors:\n{second}")
    refresh = lambda t: int(m.group(1)) if (m := re.search(r"refresh (\d+)", t)) else 0  # noqa: E731
    check(refresh(second) > refresh(first) >= 2, f"it refreshes ({refresh(first)} then {refresh(second)})")
    reqs = [float(line.split()[-4]) for line in rows] if rows else []
    check(rows and sum(reqs) > 0, f"requests/s move under load ({reqs})")
    stop(p)
else:
    check(False, "tmux and wrk are installed (scripts/bootstrap)")
finish()
