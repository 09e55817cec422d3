"""tls-echo-server against `openssl s_client`: TLS 1.3 and 1.2, ALPN chosen by the server's preference,
resumption with -sess_out / -sess_in reported as reused, and bad peers (plaintext, a client offering no
common protocol) failing alone with a reason on stderr while the server keeps serving; a client silent
before its handshake and one that stops reading, closed by --handshake-timeout and --idle-timeout.
Then corio-load --tls drives it (verified echo over TLS).
usage: tls_interop_test.py TLS_ECHO_SERVER CERT_DIR CORIO_LOAD"""
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import harness  # noqa: E402

SERVER, CERTS, LOAD = sys.argv[1], sys.argv[2], sys.argv[3]


def s_client(port, *flags, data=b"hello corio\n"):
    """Runs s_client, sends `data`, waits for it to come back, then closes; returns (stdout, stderr)."""
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                          "-CAfile", os.path.join(CERTS, "ca.pem"), "-verify_return_error", *flags],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdin.write(data)
    p.stdin.flush()
    out = b""
    deadline = time.time() + 5
    os.set_blocking(p.stdout.fileno(), False)
    while data.strip() not in out and time.time() < deadline and p.poll() is None:
        chunk = p.stdout.read()
        if chunk:
            out += chunk
        else:
            time.sleep(0.02)
    p.stdin.close()
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    os.set_blocking(p.stdout.fileno(), True)
    out += p.stdout.read() or b""
    err = p.stderr.read() or b""
    return out.decode(errors="replace"), err.decode(errors="replace")


def main():
    p, port = harness.start(SERVER, "--reactors", "1", "--cert", os.path.join(CERTS, "server.pem"),
                            "--key", os.path.join(CERTS, "server.key"), "--alpn", "h2,http/1.1")
    try:
        out, err = s_client(port, "-alpn", "http/1.1,h2")
        harness.check("hello corio" in out and "TLSv1.3" in out, f"TLS 1.3 echo through s_client ({err[-200:]!r})")
        harness.check("ALPN protocol: h2" in out, "ALPN: the server's first choice among the client's offers")

        out, err = s_client(port, "-tls1_2", "-alpn", "http/1.1")
        harness.check("hello corio" in out and "TLSv1.2" in out, "TLS 1.2 echo through s_client")
        harness.check("ALPN protocol: http/1.1" in out, "ALPN http/1.1 when that is all the client offers")

        with tempfile.TemporaryDirectory() as d:
            for version in ("-tls1_3", "-tls1_2"):
                sess = os.path.join(d, f"sess{version}.pem")
                out1, _ = s_client(port, version, "-sess_out", sess)
                out2, _ = s_client(port, version, "-sess_in", sess)
                harness.check("New, " in out1 and "Reused, " in out2,
                              f"{version}: the second connection reports a reused session")

        # Plaintext to the TLS port: that connection fails, with a reason; the server goes on.
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            s.settimeout(5)
            try:
                s.recv(100)
            except OSError:
                pass
        out, err = s_client(port, "-alpn", "spdy/1")
        harness.check("hello corio" not in out, "a client offering no common ALPN protocol is refused")
        out, err = s_client(port)
        harness.check("hello corio" in out, "and the next client is served")

        r = subprocess.run([LOAD, "--target", f"127.0.0.1:{port}", "--tls", "--tls-ca", os.path.join(CERTS, "ca.pem"),
                            "--tls-name", "localhost", "--conns", "4", "--pipeline", "2", "--duration", "1",
                            "--warmup", "0", "--json"], capture_output=True, text=True, timeout=30)
        harness.check(r.returncode == 0 and '"verified":true' in r.stdout and '"errors":{}' in r.stdout,
                      f"corio-load --tls: verified echo, no errors ({r.returncode}, {r.stdout.strip()[:300]})")
    finally:
        rc, err = harness.stop(p)
        harness.check(rc == 0, f"server exits 0 ({rc})")
        harness.check("tls handshake with 127.0.0.1" in err and "http request" in err,
                      f"plaintext reported on stderr ({err[-400:]!r})")
        harness.check("no application protocol" in err, "the ALPN refusal reported on stderr")
        kernel = "tls-echo-server: kernel TLS on" in err
        harness.check(kernel or 'tls-echo-server: kernel TLS off (kernel tls: setsockopt TCP_ULP "tls": ' in err,
                      f"kernel TLS: on, or off with the reason, said at start ({err[:300]!r})")

    # Hostile peers over TLS: one that never starts the handshake is closed at --handshake-timeout; one that
    # sends and never reads its echo is closed by --idle-timeout, which covers writes too.
    p, port = harness.start(SERVER, "--reactors", "1", "--cert", os.path.join(CERTS, "server.pem"),
                            "--key", os.path.join(CERTS, "server.key"), "--handshake-timeout", "1",
                            "--idle-timeout", "1")
    try:
        silent = socket.create_connection(("127.0.0.1", port), timeout=5)
        t0 = time.monotonic()
        try:
            closed = silent.recv(1) == b""
        except ConnectionResetError:
            closed = True
        waited = time.monotonic() - t0
        harness.check(closed and 0.8 < waited < 4, f"a client silent before the handshake is closed after {waited:.2f} s")
        silent.close()

        ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.pem"))
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.settimeout(5)
        raw.connect(("127.0.0.1", port))
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        tls.settimeout(0.5)
        chunk, sent, until = b"s" * 16384, 0, time.monotonic() + 4
        while time.monotonic() < until:
            try:
                sent += tls.send(chunk)
            except (socket.timeout, TimeoutError, ssl.SSLWantWriteError):
                pass
            except OSError:
                break
        received, until = 0, time.monotonic() + 15
        tls.settimeout(5)
        try:
            while time.monotonic() < until and (data := tls.recv(1 << 16)):
                received += len(data)
        except (OSError, ssl.SSLError):
            pass
        tls.close()
        harness.check(received < sent, f"a TLS client that stops reading is closed by the idle timeout ({received} of {sent} B came back)")
        harness.check(p.poll() is None, "the server is still up")
    finally:
        rc, err = harness.stop(p)
    harness.check(rc == 0, f"server exits 0 ({rc})")

    # --kernel-tls required: where the kernel has no TLS, a clear error at start, exit 1.
    if not kernel:
        r = subprocess.run([SERVER, "--listen", "127.0.0.1:0", "--cert", os.path.join(CERTS, "server.pem"),
                            "--key", os.path.join(CERTS, "server.key"), "--kernel-tls", "required"],
                           capture_output=True, text=True, timeout=10)
        harness.check(r.returncode == 1 and 'kernel TLS required: kernel tls: setsockopt TCP_ULP "tls"' in r.stderr,
                      f"--kernel-tls required without kernel TLS: exit 1 with the reason ({r.returncode}, {r.stderr.strip()!r})")
    r = subprocess.run([SERVER, "--listen", "127.0.0.1:0", "--cert", "c", "--key", "k", "--kernel-tls", "maybe"],
                       capture_output=True, text=True, timeout=10)
    harness.check(r.returncode != 0 and "--kernel-tls maybe: expected auto, required or off" in r.stderr,
                  f"--kernel-tls with a bad value is refused ({r.returncode}, {r.stderr.strip()[:200]!r})")

    # An ALPN name over 255 bytes is refused at start; an expired certificate is warned about, then served.
    r = subprocess.run([SERVER, "--listen", "127.0.0.1:0", "--cert", os.path.join(CERTS, "server.pem"),
                        "--key", os.path.join(CERTS, "server.key"), "--alpn", "h2," + "x" * 300],
                       capture_output=True, text=True, timeout=10)
    harness.check(r.returncode == 1 and "a name must be 1 to 255 bytes" in r.stderr,
                  f"an ALPN name of 300 bytes is refused ({r.returncode}, {r.stderr.strip()[:200]!r})")
    p, port = harness.start(SERVER, "--reactors", "1", "--cert", os.path.join(CERTS, "expired.pem"),
                            "--key", os.path.join(CERTS, "expired.key"))
    rc, err = harness.stop(p)
    harness.check(rc == 0 and "expired.pem expired on" in err, f"an expired certificate is warned about at start ({err.strip()[:200]!r})")

    # A missing certificate is a clear error at start, exit 1.
    r = subprocess.run([SERVER, "--listen", "127.0.0.1:0", "--cert", "/nonexistent.pem", "--key", "x"],
                       capture_output=True, text=True, timeout=10)
    harness.check(r.returncode == 1 and "/nonexistent.pem: No such file or directory" in r.stderr,
                  f"missing certificate: exit 1 with the reason ({r.returncode}, {r.stderr.strip()!r})")
    harness.finish()


if __name__ == "__main__":
    main()
