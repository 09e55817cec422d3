#!/usr/bin/env python3
"""Drives examples/http-server with outside clients (curl, wrk, h2load, ab, Python's http.client) and with
hostile ones from raw sockets: every request-smuggling form, 1 MiB of headers, a header dripped slowly,
100,000 pipelined requests in one write, a client that never reads, garbage; then load shedding, limits,
a graceful shutdown, HTTPS with the test CA, and static files (no escapes from the root).
usage: http_server_test.py HTTP_SERVER CERT_DIR"""
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
from harness import check, finish, start, stop, wait  # noqa: E402

SERVER, CERTS = sys.argv[1], sys.argv[2]
sanitized = os.environ.get("CORIO_SANITIZED") == "1"


def run(*cmd, timeout=60):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)


def raw(port, data, timeout=5.0, read_all=True):
    """Sends `data` on a new connection, returns everything read until the server closes (or timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
            if not read_all:
                break
    except (socket.timeout, TimeoutError, ConnectionResetError):
        pass
    s.close()
    return got


def rss_kib(proc):
    with open(f"/proc/{proc.pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


p, port = start(SERVER, "--reactors", "2", "--max-body", "100000", "--header-timeout", "2", "--body-timeout", "2",
                "--write-timeout", "2")
url = f"http://127.0.0.1:{port}"

# curl: two URLs on one connection, a chunked upload, 100-continue, HEAD.
r = run("curl", "-sv", f"{url}/plaintext", f"{url}/json")
check(r.stdout == 'Hello, World!{"message":"Hello, World!"}', f"curl: both bodies ({r.stdout!r})")
check("Re-using existing connection" in r.stderr, "curl: keep-alive reuses the connection for the second URL")
with tempfile.NamedTemporaryFile(delete=False) as f:
    upload = bytes(i % 251 for i in range(50000))
    f.write(upload)
r = subprocess.run(["curl", "-s", "-H", "Transfer-Encoding: chunked", "--data-binary", f"@{f.name}", f"{url}/echo"],
                   capture_output=True, timeout=30)
check(r.stdout == upload, f"curl: a chunked upload is echoed ({len(r.stdout)} of {len(upload)} bytes)")
r = subprocess.run(["curl", "-sv", "-H", "Expect: 100-continue", "--data-binary", f"@{f.name}", f"{url}/echo"],
                   capture_output=True, timeout=30)
check(r.stdout == upload and b"HTTP/1.1 100 Continue" in r.stderr, "curl: Expect: 100-continue gets 100, then the echo")
os.unlink(f.name)
r = run("curl", "-sI", f"{url}/plaintext")
check(r.stdout.startswith("HTTP/1.1 200 OK") and "Content-Length: 13" in r.stdout, "curl: HEAD has the GET's length, no body")
r = run("curl", "-s", f"{url}/stream?n=5")
check(r.stdout == "".join(f"chunk {i}\n" for i in range(5)), "curl: a streamed (chunked) response")
r = run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{url}/missing")
check(r.stdout == "404", f"an unknown path is 404 ({r.stdout})")
r = run("curl", "-s", "-D", "-", "-o", "/dev/null", "-X", "DELETE", f"{url}/json")
check(r.stdout.startswith("HTTP/1.1 405") and "Allow: GET" in r.stdout, "a known path with another method is 405 with Allow")

# Python's http.client: keep-alive, a body, HTTP/1.0.
c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
for _ in range(3):
    c.request("GET", "/plaintext")
    resp = c.getresponse()
    body = resp.read()
check(resp.status == 200 and body == b"Hello, World!", "http.client: three GETs on one connection")
c.request("POST", "/echo", body=b"x" * 1000)
resp = c.getresponse()
check(resp.read() == b"x" * 1000, "http.client: POST echo")
c.close()
got = raw(port, b"GET /plaintext HTTP/1.0\r\n\r\n")
check(got.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in got and got.endswith(b"Hello, World!"),
      "HTTP/1.0 without keep-alive: answered, then closed")

# wrk, h2load (HTTP/1.1, pipelined -m 16), ab -k.
r = run("wrk", "-t1", "-c10", "-d1s", f"{url}/plaintext")
m = re.search(r"(\d+) requests in", r.stdout)
check(m and int(m.group(1)) > 100 and "Non-2xx" not in r.stdout and "Socket errors" not in r.stdout,
      f"wrk: {m.group(1) if m else '?'} requests in 1 s, no errors")
r = run("h2load", "--h1", "-n", "20000", "-c", "4", "-m", "16", f"{url}/plaintext")
check("20000 succeeded, 0 failed, 0 errored" in r.stdout, f"h2load --h1 -m 16: {re.search(r'requests: .*', r.stdout).group(0) if 'requests:' in r.stdout else r.stdout[-300:]}")
r = run("ab", "-k", "-n", "2000", "-c", "10", f"{url}/plaintext")
check("Failed requests:        0" in r.stdout and "Keep-Alive requests:    2000" in r.stdout, "ab -k: 2000 requests, all keep-alive, none failed")

# Request smuggling and malformed heads: 400 (or their own status) and the connection closed.
smuggling = {
    "CL and TE": b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "differing CLs": b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    "TE not chunked last": b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "obs-fold": b"GET /plaintext HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n  2\r\n\r\n",
    "NUL in a header": b"GET /plaintext HTTP/1.1\r\nHost: h\r\nX-A: 1\x002\r\n\r\n",
    "bare CR in a header": b"GET /plaintext HTTP/1.1\r\nHost: h\r\nX-A: 1\r2\r\n\r\n",
    "chunk size overflow": b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000001\r\nx\r\n0\r\n\r\n",
    "bad chunk size": b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nx\r\n0\r\n\r\n",
    "trailer without a colon": b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nno colon\r\n\r\n",
    "space before colon": b"GET /plaintext HTTP/1.1\r\nHost : h\r\n\r\n",
    "no Host": b"GET /plaintext HTTP/1.1\r\n\r\n",
    "garbage": bytes(range(256)) * 4,
}
for name, data in smuggling.items():
    got = raw(port, data)
    check(got.startswith(b"HTTP/1.1 400 ") and b"Connection: close" in got and len(re.findall(rb"HTTP/1\.1 \d{3} ", got)) == 1,
          f"{name}: 400, one response, closed ({got[:40]!r})")

# Limits.
got = raw(port, b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: h\r\n\r\n")
check(got.startswith(b"HTTP/1.1 414 "), f"a 20 KB request line: 414 ({got[:30]!r})")
got = raw(port, b"GET /plaintext HTTP/1.1\r\nHost: h\r\n" + b"X-Big: " + b"b" * (1 << 20) + b"\r\n\r\n")
check(got.startswith(b"HTTP/1.1 431 "), f"1 MiB of headers: 431 ({got[:30]!r})")
got = raw(port, b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 200000\r\n\r\n")
check(got.startswith(b"HTTP/1.1 413 "), f"a body over --max-body: 413 before it is sent ({got[:30]!r})")
got = raw(port, b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + b"ffff\r\n" + b"c" * 65535 + b"\r\n" + b"ffff\r\n" + b"c" * 65535 + b"\r\n0\r\n\r\n")
check(got.startswith(b"HTTP/1.1 413 "), f"a chunked body over --max-body: 413 ({got[:30]!r})")
got = raw(port, b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n" + b"T: v\r\n" * 20000 + b"\r\n")
check(got.startswith(b"HTTP/1.1 431 "), f"20,000 trailer fields: 431, the header field limit ({got[:30]!r})")

# A header dripped a byte a second: 408 at --header-timeout (2 s), while others are served.
s = socket.create_connection(("127.0.0.1", port), timeout=10)
t0 = time.monotonic()
got = b""
for ch in b"GET /plaintext HTTP/1.1\r\nHost: h\r\n":
    try:
        s.sendall(bytes([ch]))
    except OSError:
        break
    s.settimeout(1.0)
    try:
        got += s.recv(4096)
        if got:
            break
    except (socket.timeout, TimeoutError):
        pass
    except ConnectionResetError:
        break
took = time.monotonic() - t0
s.close()
check(got.startswith(b"HTTP/1.1 408 ") and 1.5 < took < 5, f"a dripped header: 408 after {took:.1f} s")

# A body that stops half-way: 408 at --body-timeout (2 s).
t0 = time.monotonic()
got = raw(port, b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\nhalf", timeout=10)
took = time.monotonic() - t0
check(got.startswith(b"HTTP/1.1 408 ") and 1.5 < took < 5, f"a stalled body: 408 after {took:.1f} s ({got[:30]!r})")

# 100,000 pipelined requests in one write: all answered, in order, memory bounded.
s = socket.create_connection(("127.0.0.1", port), timeout=20)
before = rss_kib(p)
requests = b"".join(b"GET /stream?n=1&i=%d HTTP/1.1\r\nHost: h\r\n\r\n" % i if i % 1000 == 999 else
                    b"GET /plaintext HTTP/1.1\r\nHost: h\r\n\r\n" for i in range(100000))
sender = threading.Thread(target=s.sendall, args=(requests,))
sender.start()
received = bytearray()
peak = 0
while received.count(b"HTTP/1.1 200 OK") < 100000:
    try:
        chunk = s.recv(1 << 20)
    except (socket.timeout, TimeoutError):
        break
    if not chunk:
        break
    received += chunk
    if len(received) % 16 == 0:
        peak = max(peak, rss_kib(p))
sender.join(timeout=20)
peak = max(peak, rss_kib(p))
s.close()
answered = received.count(b"HTTP/1.1 200 OK")
in_order = all(received.find(b"chunk 0", 0) >= 0 for _ in [0])
check(answered == 100000, f"100,000 pipelined requests in one write: {answered} answered")
# Every 1000th request was a streamed one: its chunk sits between the 999th and 1001st plaintext replies.
positions = [m.start() for m in re.finditer(rb"HTTP/1.1 200 OK", received)]
streamed = [i for i, pos in enumerate(positions) if received.startswith(b"HTTP/1.1 200 OK\r\nServer: corio\r\n", pos)
            and b"Transfer-Encoding: chunked" in received[pos:pos + 200]]
check(streamed == list(range(999, 100000, 1000)), f"...in order (streamed replies at {streamed[:3]}...)")
grown = peak - before
check(grown < 16 * 1024 or sanitized, f"...with the server's memory bounded (grew {grown} KiB)")

# A client that never reads its responses is closed at --write-timeout (2 s).
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.settimeout(0.5)
closed_after = None
t0 = time.monotonic()
while time.monotonic() - t0 < 15:
    try:
        s.sendall(b"GET /stream?n=100&pad=65536 HTTP/1.1\r\nHost: h\r\n\r\n" * 10)  # 6.5 MB each
    except (socket.timeout, TimeoutError):
        continue
    except OSError:
        closed_after = time.monotonic() - t0
        break
s.close()
check(closed_after is not None and closed_after < 10, f"a client that never reads is closed ({closed_after})")
r = run("curl", "-s", f"{url}/plaintext")
check(r.stdout == "Hello, World!", "and everyone else is still served")
rc, err = stop(p)
check(rc == 0, f"SIGTERM exits 0 ({rc}; {err.strip()[-200:]})")

# Idle keep-alive connections hold no buffer of their own: 2,000 of them, each after one request.
if not sanitized:
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    p, port = start(SERVER, "--reactors", "1")
    idle_conns = []
    for i in range(2100):
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn.sendall(b"GET /plaintext HTTP/1.1\r\nHost: h\r\n\r\n")
        got = b""
        while not got.endswith(b"Hello, World!"):
            got += conn.recv(4096)
        idle_conns.append(conn)
        if i == 99:
            before = rss_kib(p)  # after 100 warm-up connections
    per_conn = (rss_kib(p) - before) / 2000
    check(per_conn <= 5.0, f"an idle keep-alive connection costs {per_conn:.2f} KiB of server memory (<= 5)")
    for conn in idle_conns:
        conn.close()
    rc, _ = stop(p)
    check(rc == 0, f"exits 0 ({rc})")

# After a quiet spell longer than --idle-timeout, a new connection is answered (its deadlines are taken
# from the clock, not from when the reactor last woke): a request per reactor, twice.
p, port = start(SERVER, "--reactors", "2", "--idle-timeout", "1")
answered = 0
for _ in range(2):
    time.sleep(1.6)
    for _ in range(2):
        got = raw(port, b"GET /plaintext HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        answered += got.startswith(b"HTTP/1.1 200")
check(answered == 4, f"after a quiet spell past the idle timeout, new connections are answered ({answered} of 4)")
rc, _ = stop(p)
check(rc == 0, f"exits 0 ({rc})")

# Load shedding: --max-in-flight 2 per reactor (one reactor): the third concurrent request gets 503 with
# Retry-After at once; the others finish.
p, port = start(SERVER, "--reactors", "1", "--max-in-flight", "2")
results = []


def slow_get():
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/slow?ms=500")
    resp = conn.getresponse()
    results.append((resp.status, resp.getheader("Retry-After"), time.monotonic()))
    conn.close()


t0 = time.monotonic()
threads = [threading.Thread(target=slow_get) for _ in range(2)]
for t in threads:
    t.start()
time.sleep(0.2)
slow_get()
for t in threads:
    t.join()
shed = [r for r in results if r[0] == 503]
check(len(shed) == 1 and shed[0][1] == "1" and shed[0][2] - t0 < 0.45, f"over --max-in-flight: 503 with Retry-After at once ({results})")
check(sum(1 for r in results if r[0] == 200) == 2, "the requests in flight finish")
rc, err = stop(p)
check(rc == 0 and "shed 1" in err, f"shedding is counted ({err.strip()})")

# Active shedding: a reactor busier than --max-utilisation (25%: low, since the reactor's share of a core
# shared with the other tests is all it can use) answers 503 "too busy" at once, counted; once the load
# stops it serves again.
p, port = start(SERVER, "--reactors", "1", "--max-utilisation", "25")
statuses = []


def spin_for(seconds):
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/spin?ms=20")
        resp = conn.getresponse()
        statuses.append((resp.status, resp.getheader("Retry-After"), resp.read()))
        conn.close()


threads = [threading.Thread(target=spin_for, args=(1.5,)) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
busy = [s for s in statuses if s[0] == 503]
check(busy and all(s[1] == "1" and b"too busy" in s[2] for s in busy) and len(busy) < len(statuses),
      f"over --max-utilisation: some requests get 503 too busy ({len(busy)} of {len(statuses)})")
time.sleep(0.5)
r = run("curl", "-s", f"http://127.0.0.1:{port}/plaintext")
check(r.stdout == "Hello, World!", "once the load stops, requests are served again")
rc, err = stop(p)
check(rc == 0 and f"shed {len(busy)}" in err, f"and the shed requests are counted ({err.strip()})")

# Graceful shutdown: an idle keep-alive connection is closed at once; a request in progress finishes with
# "Connection: close".
p, port = start(SERVER, "--reactors", "2", "--drain-timeout", "10")
idle = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
idle.request("GET", "/plaintext")
idle.getresponse().read()
busy = socket.create_connection(("127.0.0.1", port), timeout=10)
busy.sendall(b"GET /slow?ms=800 HTTP/1.1\r\nHost: h\r\n\r\n")
time.sleep(0.2)
t0 = time.monotonic()
p.send_signal(signal.SIGTERM)
got = b""
while True:
    chunk = busy.recv(4096)
    if not chunk:
        break
    got += chunk
check(got.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in got and got.endswith(b"done"),
      "a request in progress at SIGTERM finishes, with Connection: close")
idle.sock.settimeout(2)
try:
    idle_closed = idle.sock.recv(1) == b""
except (socket.timeout, TimeoutError):
    idle_closed = False
check(idle_closed, "an idle keep-alive connection is closed by the drain")
rc = wait(p)
check(rc == 0 and time.monotonic() - t0 < 3, f"the server exits 0 once the request is done ({rc})")

# HTTPS with ALPN http/1.1, through curl with the test CA.
p, port = start(SERVER, "--reactors", "1", "--tls-cert", os.path.join(CERTS, "server.pem"),
                "--tls-key", os.path.join(CERTS, "server.key"))
r = run("curl", "-sv", "--http1.1", "--cacert", os.path.join(CERTS, "ca.pem"), "--resolve", f"localhost:{port}:127.0.0.1",
        f"https://localhost:{port}/plaintext", f"https://localhost:{port}/json")
check(r.stdout == 'Hello, World!{"message":"Hello, World!"}', f"HTTPS: curl gets both ({r.stdout!r}, {r.stderr[-300:]!r})")
check("ALPN: server accepted http/1.1" in r.stderr, "HTTPS: ALPN http/1.1")
check("Re-using existing connection" in r.stderr, "HTTPS: keep-alive")
rc, err = stop(p)
check(rc == 0, f"the HTTPS server exits 0 ({rc})")

# Static files under --root: types, a large body read through the reactor, ETag/304, HEAD, no escapes.
with tempfile.TemporaryDirectory() as d:
    www = os.path.join(d, "www")
    os.makedirs(os.path.join(www, "sub"))
    with open(os.path.join(www, "index.html"), "w") as f:
        f.write("<h1>hi</h1>\n")
    with open(os.path.join(www, "style.css"), "w") as f:
        f.write("body{}\n")
    big = os.urandom(3_000_000)
    with open(os.path.join(www, "sub", "big.bin"), "wb") as f:
        f.write(big)
    with open(os.path.join(d, "secret.txt"), "w") as f:
        f.write("secret\n")
    os.symlink("../secret.txt", os.path.join(www, "escape"))
    os.symlink("/etc/passwd", os.path.join(www, "absolute"))
    os.symlink("style.css", os.path.join(www, "inside"))
    p, port = start(SERVER, "--reactors", "1", "--root", www)
    url = f"http://127.0.0.1:{port}"
    r = run("curl", "-s", "-D", "-", f"{url}/")
    check(r.stdout.startswith("HTTP/1.1 200") and "text/html" in r.stdout and r.stdout.endswith("<h1>hi</h1>\n"),
          "a directory serves its index.html")
    r = run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{content_type}", f"{url}/style.css")
    check(r.stdout == "200 text/css; charset=utf-8", f"Content-Type by extension ({r.stdout})")
    r = subprocess.run(["curl", "-s", f"{url}/sub/big.bin"], capture_output=True, timeout=30)
    check(r.stdout == big, f"a 3 MB file arrives whole ({len(r.stdout)} bytes)")
    r = run("curl", "-sI", f"{url}/sub/big.bin")
    check("Content-Length: 3000000" in r.stdout and "application/octet-stream" in r.stdout, "HEAD of it: its length and type")
    etag = re.search(r"ETag: (\S+)", r.stdout).group(1)
    r = run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", f"If-None-Match: {etag}", f"{url}/sub/big.bin")
    check(r.stdout == "304", f"If-None-Match with its ETag: 304 ({r.stdout})")
    r = run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{url}/inside")
    check(r.stdout == "200", "a symlink within the root is served")
    for path in ("escape", "absolute", "sub/../../secret.txt", "%2e%2e/secret.txt", "sub/%2e%2e/%2e%2e/secret.txt",
                 "missing.txt", "sub/", "%00"):
        r = run("curl", "-s", "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}", f"{url}/{path}")
        check(r.stdout == "404", f"/{path}: 404 ({r.stdout})")
    r = run("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "--data", "x", f"{url}/style.css")
    check(r.stdout == "405", f"PUT of a file: 405 ({r.stdout})")
    rc, _ = stop(p)
    check(rc == 0, f"the file server exits 0 ({rc})")

for args, want in ((["--bogus", "1"], "--bogus: unknown flag"), (["--listen", "nope"], "--listen"),
                   (["--tls-cert", "x.pem"], "--tls-cert and --tls-key go together"),
                   (["--tls-cert", "/missing.pem", "--tls-key", "k"], "/missing.pem: No such file or directory")):
    r = run(SERVER, *args)
    check(r.returncode != 0 and want in r.stderr, f"{' '.join(args)}: {r.stderr.strip()[:120]}")
finish()
