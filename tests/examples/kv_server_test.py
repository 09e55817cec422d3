#!/usr/bin/env python3
"""Drives kv-server (two reactors, so keys live on both shards) from Python's standard sockets and with
kv-client: every command and its reply, keys written on one connection and read on another, pipelining,
malformed commands, a line over --max-line, the --max-keys bound, an idle client and a trickler closed by
--idle-timeout, a SIGTERM drain that ends an idle connection, and flag errors.
usage: kv_server_test.py path/to/kv-server path/to/kv-client"""
import socket
import subprocess
import sys
import threading
import time

from harness import check, finish, start, stop

server_bin, client_bin = sys.argv[1], sys.argv[2]


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def ask(self, *commands):
        self.s.sendall(b"".join(c.encode() + b"\n" for c in commands))
        return [self.line() for _ in commands]

    def closed_within(self, seconds):
        self.s.settimeout(seconds)
        try:
            return self.s.recv(4096) == b""
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True


p, port = start(server_bin, "--reactors", "2", "--max-line", "256", "--max-keys", "999", "--idle-timeout", "1",
                "--drain-timeout", "2")
a = Conn(port)
check(a.ask("SET greeting hello world", "GET greeting") == ["OK", "VALUE hello world"],
      "SET then GET returns the value, spaces included")
a.s.sendall(b"GET greeting\r\n")
check(a.line() == "VALUE hello world", "a CRLF line is understood")
check(a.ask("GET missing", "DEL greeting", "DEL greeting", "GET greeting") ==
      ["NOT_FOUND", "DELETED", "NOT_FOUND", "NOT_FOUND"], "DEL removes a key once")

writers = [Conn(port) for _ in range(4)]
for w, conn in enumerate(writers):
    replies = conn.ask(*[f"SET w{w}-k{k} v{w}.{k}" for k in range(50)])
    check(replies == ["OK"] * 50, f"connection {w}: 50 SETs acknowledged")
reader = Conn(port)
got = reader.ask(*[f"GET w{w}-k{k}" for w in range(4) for k in range(50)])
want = [f"VALUE v{w}.{k}" for w in range(4) for k in range(50)]
check(got == want, "200 keys written on four connections read back on a fifth (both shards, both reactors)")
check(reader.ask("COUNT") == ["COUNT 200"], "COUNT sums every shard")

pipelined = reader.ask(*[f"SET p{i} {i}" if i % 2 == 0 else f"GET p{i - 1}" for i in range(100)])
check(pipelined == [("OK" if i % 2 == 0 else f"VALUE {i - 1}") for i in range(100)],
      "100 pipelined commands answered in order")

bad = reader.ask("FLY me", "GET", "GET a b", "COUNT extra", "")
check(all(r.startswith("ERROR ") for r in bad) and len(bad) == 5, f"malformed commands get ERROR: {bad}")
check(reader.ask("GET p0") == ["VALUE 0"], "the connection goes on after malformed commands")

early = Conn(port)
early.s.sendall(b"SET held 1\nGET he")  # a whole command, then part of the next
early.s.settimeout(0.5)
check(early.line() == "OK", "a reply goes out while the next command is still arriving")
early.s.sendall(b"ld\n")
check(early.line() == "VALUE 1", "...and the rest of that command is answered")

half = Conn(port)
half.s.sendall(b"".join(b"SET h%d x\n" % i for i in range(50)) + b"GET h0")  # the last line never ends
half.s.shutdown(socket.SHUT_WR)
check([half.line() for _ in range(50)] == ["OK"] * 50 and half.line() is None,
      "a client that half-closes gets every reply, then the end")

inside = Conn(port)
inside.s.sendall(b"SET k " + b"x" * 300 + b"\nGET k\n")  # the newline arrives with the line
check(inside.line() == "ERROR line too long", "a line over --max-line is refused even when whole in one read")
check(inside.closed_within(5), "...and the connection closed")

big = Conn(port)
big.s.sendall(b"SET k " + b"x" * 1000)
check(big.line() == "ERROR line too long", "a line over --max-line is refused...")
check(big.closed_within(5), "...and the connection closed, without waiting for its end")

client = subprocess.run([client_bin, "--target", f"127.0.0.1:{port}", "--conns", "10", "--keys", "30"],
                        capture_output=True, text=True, timeout=60)
check(client.returncode == 0 and "1050 of 1050 replies as expected" in client.stdout,
      f"kv-client checks every reply: {client.stdout.strip()} {client.stderr.strip()}")

full = Conn(port)
replies = full.ask(*[f"SET bound{i} x" for i in range(1000)])
check("ERROR store full" in replies, "SETs past --max-keys get ERROR store full")
count = int(full.ask("COUNT")[0].split()[1])
check(900 <= count <= 999, f"the store holds at most --max-keys keys (999, odd over two shards): {count}")
check(full.ask("SET w0-k0 replaced", "GET w0-k0") == ["OK", "VALUE replaced"], "an existing key can still be replaced")
full.ask("COUNT")

stalled = Conn(port)
stalled.ask("SET big " + "v" * 240)
flood = b"GET big\n" * 40000  # about 10 MB of replies: more than the socket buffers hold


def send_flood():
    try:
        stalled.s.sendall(flood)
    except OSError:
        pass  # closed by the server while this was still sending


sender = threading.Thread(target=send_flood, daemon=True)
sender.start()
time.sleep(3)  # never reading: the server's writes stall, and --idle-timeout (1 s) covers them too
stalled.s.settimeout(5)
received, closed = 0, False
try:
    while received < len(flood) * 40:
        chunk = stalled.s.recv(1 << 20)
        if not chunk:
            closed = True
            break
        received += len(chunk)
except (socket.timeout, TimeoutError):
    pass
except ConnectionResetError:
    closed = True
check(closed and received < 40000 * 244, f"a client that stops reading is closed by the idle timeout (read {received} B)")

idle = Conn(port)
t0 = time.monotonic()
check(idle.closed_within(5), "a silent client is closed by --idle-timeout")
check(time.monotonic() - t0 < 3, f"...after about a second ({time.monotonic() - t0:.1f} s)")

trickler = Conn(port)
t0 = time.monotonic()
closed = False
for ch in b"SET slow loris":
    try:
        trickler.s.sendall(bytes([ch]))
    except (BrokenPipeError, ConnectionResetError):
        closed = True
        break
    time.sleep(0.25)
check(closed or trickler.closed_within(3), "a trickler that never ends its line is closed by the idle timeout")

held = Conn(port)
held.ask("COUNT")
t0 = time.monotonic()
rc, err = stop(p)
check(rc == 0, f"SIGTERM exits 0 (got {rc}; {err.strip()})")
check(time.monotonic() - t0 < 5, "the drain ends within --drain-timeout plus the idle timeout")
check(held.closed_within(1), "a connection open at SIGTERM is closed by the drain")

# With timeouts far off, SIGTERM still ends at once: the connections between commands are closed, and what
# was pipelined before the signal is answered first.
p, port = start(server_bin, "--idle-timeout", "60", "--drain-timeout", "60")
quiet = [Conn(port) for _ in range(10)]
check(all(c.ask("COUNT") == ["COUNT 0"] for c in quiet), "10 connections served, then quiet")
t0 = time.monotonic()
rc, err = stop(p)
check(rc == 0 and time.monotonic() - t0 < 5, f"SIGTERM ends the drain at once (exit {rc} after {time.monotonic() - t0:.1f} s)")
check(all(c.closed_within(1) for c in quiet), "every quiet connection was closed")

usage = subprocess.run([server_bin, "--max-line", "lots"], capture_output=True, text=True, timeout=10)
check(usage.returncode == 1 and "--max-line: not a valid value" in usage.stderr,
      f"a bad --max-line is refused: {usage.stderr.strip()}")
unknown = subprocess.run([server_bin, "--shards", "4"], capture_output=True, text=True, timeout=10)
check(unknown.returncode == 2 and "usage:" in unknown.stderr, "an unknown flag prints the usage")
finish()
