"""corio-load against real servers on loopback: the echo server (verified, JSON), a server that corrupts
one byte (verification fails, exit 1), nothing listening (connect errors counted, exit 1), an HTTP/1.1
keep-alive server from Python's standard library, the --rate schedule, and bad flags (exit 2).
usage: corio_load_test.py CORIO_LOAD_BIN ECHO_SERVER_BIN"""
import http.server
import json
import os
import socket
import socketserver
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import harness  # noqa: E402

LOAD, ECHO = sys.argv[1], sys.argv[2]


def load(*flags, timeout=60):
    p = subprocess.run([LOAD, *flags], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def load_json(*flags):
    rc, out, err = load(*flags, "--json")
    try:
        return rc, json.loads(out)
    except json.JSONDecodeError:
        return rc, {"unparsed": out, "stderr": err}


class Corrupting(socketserver.BaseRequestHandler):
    """Echoes, but flips one byte in the third reply."""
    def handle(self):
        n = 0
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            n += 1
            if n == 3:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            self.request.sendall(data)


class Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"hello" if self.path == "/hello" else b"missing"
        self.send_response(200 if self.path == "/hello" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Threaded(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(handler):
    srv = Threaded(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"127.0.0.1:{srv.server_address[1]}"


def main():
    p, port = harness.start(ECHO, "--reactors", "1")
    target = f"127.0.0.1:{port}"
    try:
        rc, r = load_json("--target", target, "--conns", "8", "--duration", "1", "--warmup", "0.2", "--pipeline", "4")
        harness.check(rc == 0 and r.get("verified") is True and r.get("requests", 0) > 0,
                      f"echo: exit 0, verified, requests > 0 ({rc}, {r})")
        lat = r.get("latency_us", {})
        harness.check(0 < lat.get("p50", 0) <= lat.get("p99", 0) <= lat.get("max", 0),
                      f"latency p50 <= p99 <= max ({lat})")
        harness.check(r.get("errors") == {}, f"no errors ({r.get('errors')})")

        rc, r = load_json("--target", target, "--mode", "frame", "--conns", "4", "--size", "5000", "--duration", "0.5",
                          "--warmup", "0")
        harness.check(rc == 0 and r.get("verified") is True, f"frame mode, 5000-byte frames, verified ({rc}, {r})")

        rc, r = load_json("--target", target, "--conns", "4", "--rate", "2000", "--duration", "2", "--warmup", "0")
        got = r.get("requests", 0)
        harness.check(rc == 0 and 3600 <= got <= 4000, f"--rate 2000 for 2 s: about 4000 requests ({got})")

        rc, out, err = load("--target", target, "--reactors", "2", "--conns", "6", "--duration", "0.5", "--warmup", "0")
        harness.check(rc == 0 and "req/s" in out and "latency (us)" in out, f"text summary, 2 reactors ({rc}, {out!r})")
    finally:
        rc, err = harness.stop(p)
        harness.check(rc == 0, f"echo-server exits 0 ({rc})")

    srv, bad_target = serve(Corrupting)
    rc, r = load_json("--target", bad_target, "--conns", "1", "--duration", "1", "--warmup", "0")
    harness.check(rc == 1 and r.get("verified") is False and r.get("errors", {}).get("verify", 0) >= 1,
                  f"a corrupted reply fails verification, exit 1 ({rc}, {r})")
    srv.shutdown()

    srv, http_target = serve(Hello)
    rc, r = load_json("--target", http_target, "--mode", "http", "--path", "/hello", "--conns", "2", "--duration", "1",
                      "--warmup", "0")
    harness.check(rc == 0 and r.get("requests", 0) > 0 and r.get("non_2xx") == 0, f"http keep-alive GETs ({rc}, {r})")
    rc, r = load_json("--target", http_target, "--mode", "http", "--path", "/nope", "--conns", "1", "--duration", "0.5",
                      "--warmup", "0")
    harness.check(r.get("non_2xx", 0) > 0, f"404s counted as non-2xx ({r})")
    srv.shutdown()

    # Nothing listens on this port: every connection fails and is counted, no crash.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    closed = f"127.0.0.1:{s.getsockname()[1]}"
    s.close()
    rc, r = load_json("--target", closed, "--conns", "5", "--duration", "0.5", "--warmup", "0")
    harness.check(rc == 1 and r.get("errors", {}).get("connect: Connection refused") == 5,
                  f"refused connections counted, exit 1 ({rc}, {r})")

    for bad in (["--conns", "0"], ["--mode", "smtp"], ["--target", "nowhere"], ["--rate", "-5"], ["--bogus", "1"]):
        rc, out, err = load(*bad)
        harness.check(rc == 2 and err.strip() != "", f"bad flags {bad}: exit 2 with a message ({rc}, {err.strip()!r})")
    harness.finish()


if __name__ == "__main__":
    main()
