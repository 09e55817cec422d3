#!/usr/bin/env python3
"""The client stack from outside, on real servers started here: examples/http-get and corio-load --client
against corio's http-server (HTTP and HTTPS) and nginx (HTTP and HTTPS), names resolved by dnsmasq on a
high port (--resolver); NXDOMAIN, a refused port and bad input reported with what failed and why.
usage: http_client_test.py HTTP_GET HTTP_SERVER CORIO_LOAD CERT_DIR"""
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
from harness import check, finish, start, stop  # noqa: E402

HTTP_GET, SERVER, LOAD = sys.argv[1:4]
CERTS = os.path.abspath(sys.argv[4])
backend = ["--backend", os.environ.get("CORIO_BACKEND", "uring")]


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def udp_taken(port):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return False
        except OSError:
            return True


def dns_port_candidates(n):
    """Ports below the kernel's ephemeral range, where no client connection takes its source port (wrk and ab
    in the tests beside this one leave thousands of those in TIME_WAIT), in random order."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        low = int(f.read().split()[0])
    return random.sample(range(max(1024, low - 12000), low), n)


def start_dnsmasq():
    """dnsmasq on a port free for UDP and TCP (a DNS server binds both), with web.test; a few tries, since a
    port can be taken between the check and dnsmasq's bind."""
    why = "no free port below the ephemeral range"
    for port in dns_port_candidates(20):
        if udp_taken(port):
            continue
        with socket.socket() as t:
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
        err = tempfile.TemporaryFile("w+")
        d = subprocess.Popen(["/usr/sbin/dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
                              "--bind-interfaces", "--listen-address=127.0.0.1", f"--port={port}", "--user=root",
                              "--pid-file", "--local=/test/", "--host-record=web.test,127.0.0.1,30"],
                             stdout=subprocess.DEVNULL, stderr=err)
        for _ in range(300):
            if d.poll() is not None or udp_taken(port):
                break
            time.sleep(0.01)
        if d.poll() is None and udp_taken(port):
            err.close()
            return d, port
        d.kill()
        d.wait()
        err.seek(0)
        why = err.read().strip() or f"exit status {d.returncode}"
        err.close()
    sys.exit(f"dnsmasq did not start: {why} (scripts/bootstrap installs dnsmasq-base)")


def get(*args):
    return subprocess.run([HTTP_GET, *backend, *args], capture_output=True, text=True, timeout=60)


def lines(r):
    return r.stdout.strip().splitlines()


work = tempfile.mkdtemp()
procs = []
try:
    dns, dns_port = start_dnsmasq()
    procs.append(dns)
    resolver = ["--resolver", f"127.0.0.1:{dns_port}"]
    check(dns.poll() is None, "dnsmasq runs")

    # corio's http-server, plain: by name through dnsmasq; the second URL reuses the connection.
    p, port = start(SERVER, "--reactors", "1")
    r = get(*resolver, f"http://web.test:{port}/plaintext", f"http://web.test:{port}/json")
    out = lines(r)
    check(r.returncode == 0 and len(out) == 2, f"http-get: two URLs by name ({r.returncode}; {r.stderr.strip()})")
    check(len(out) == 2 and out[0].startswith(f"200 http://web.test:{port}/plaintext  13 bytes") and "(reused)" not in out[0],
          f"the first is a new connection: {out[0] if out else ''}")
    check(len(out) == 2 and out[1].startswith(f"200 http://web.test:{port}/json  27 bytes") and out[1].endswith("(reused)"),
          f"the second reuses it: {out[1] if len(out) > 1 else ''}")
    m = re.search(r"dns ([\d.]+) ms", out[0]) if out else None
    check(m is not None and float(m.group(1)) > 0, "the first request's DNS phase is timed")
    r = get(*resolver, f"http://missing.test:{port}/")
    check(r.returncode == 1 and f"resolve missing.test: NXDOMAIN from 127.0.0.1:{dns_port}" in r.stderr,
          f"NXDOMAIN says so and names the server: {r.stderr.strip()}")
    closed = free_port()
    r = get(f"http://127.0.0.1:{closed}/")
    check(r.returncode == 1 and f"connect 127.0.0.1:{closed}: Connection refused" in r.stderr, f"a refused port: {r.stderr.strip()}")
    r = get("ftp://x/")
    check(r.returncode == 1 and "not an http:// or https:// URL" in r.stderr, f"a bad URL: {r.stderr.strip()}")
    r = get("--bogus", "1", "http://x/")
    check(r.returncode == 2 and "unknown flag --bogus" in r.stderr, f"an unknown flag: {r.stderr.strip()}")
    r = subprocess.run([LOAD, *backend, "--mode", "http", "--client", *resolver, "--target", f"web.test:{port}", "--path",
                        "/plaintext", "--conns", "8", "--duration", "1", "--warmup", "0.2", "--json"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0 and '"errors":{}' in r.stdout and '"requests":0,' not in r.stdout,
          f"corio-load --client by name: {r.stdout.strip()[:160]} {r.stderr.strip()[:200]}")
    rc, err = stop(p)
    check(rc == 0, f"the server stops cleanly ({rc})")

    # HTTPS against corio's server with the test CA.
    p, port = start(SERVER, "--reactors", "1", "--tls-cert", os.path.join(CERTS, "server.pem"), "--tls-key",
                    os.path.join(CERTS, "server.key"))
    r = get("--ca", os.path.join(CERTS, "ca.pem"), f"https://localhost:{port}/plaintext", f"https://localhost:{port}/json")
    out = lines(r)
    check(r.returncode == 0 and len(out) == 2 and out[1].endswith("(reused)"), f"https, reused: {out} {r.stderr.strip()}")
    m = re.search(r"tls ([\d.]+) ms", out[0]) if out else None
    check(m is not None and float(m.group(1)) > 0, "the handshake is timed")
    r = get(f"https://localhost:{port}/plaintext")
    check(r.returncode == 1 and "certificate verify failed" in r.stderr, f"without the test CA: refused ({r.stderr.strip()[:160]})")
    stop(p)

    # nginx, HTTP and HTTPS (one worker, its own prefix and a high port).
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    check(os.access(nginx, os.X_OK), "nginx is installed (scripts/bootstrap installs nginx-light)")
    if os.access(nginx, os.X_OK):
        port, sport = free_port(), free_port()
        os.makedirs(os.path.join(work, "logs"), exist_ok=True)
        with open(os.path.join(work, "nginx.conf"), "w") as f:
            f.write(f"""daemon off; master_process off; worker_processes 1; error_log {work}/error.log; pid {work}/nginx.pid;
events {{ worker_connections 256; }}
http {{
  access_log off; client_body_temp_path {work}/body; proxy_temp_path {work}/proxy; fastcgi_temp_path {work}/fcgi;
  uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
  server {{ listen 127.0.0.1:{port}; listen 127.0.0.1:{sport} ssl;
    ssl_certificate {CERTS}/server.pem; ssl_certificate_key {CERTS}/server.key;
    location /plaintext {{ default_type text/plain; return 200 "Hello, World!"; }} }}
}}
""")
        n = subprocess.Popen([nginx, "-c", os.path.join(work, "nginx.conf"), "-p", work], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
        procs.append(n)
        up = False
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                up = True
                break
            except OSError:
                time.sleep(0.05)
        log = os.path.join(work, "error.log")
        why = n.stderr.read() if not up and n.poll() is not None else ""
        check(up, f"nginx listens ({why.strip()[-300:] or (open(log).read().strip()[-300:] if os.path.exists(log) else '')})")
        r = get(*resolver, f"http://web.test:{port}/plaintext", f"http://127.0.0.1:{port}/plaintext", f"http://web.test:{port}/missing")
        out = lines(r)
        check(r.returncode == 0 and len(out) == 3 and out[0].startswith("200 ") and out[2].startswith("404 ") and out[2].endswith("(reused)"),
              f"nginx: by name and by address, a 404 on the pooled connection: {out} {r.stderr.strip()}")
        r = get("--ca", os.path.join(CERTS, "ca.pem"), f"https://localhost:{sport}/plaintext", f"https://localhost:{sport}/plaintext")
        out = lines(r)
        check(r.returncode == 0 and len(out) == 2 and "13 bytes" in out[0] and out[1].endswith("(reused)"),
              f"nginx over https, reused: {out} {r.stderr.strip()}")
finally:
    for q in procs:
        q.send_signal(signal.SIGTERM)
        try:
            q.wait(timeout=10)
        except subprocess.TimeoutExpired:
            q.kill()
    shutil.rmtree(work, ignore_errors=True)
finish()
