#!/usr/bin/env python3
"""Drives the udp-echo-server binary from Python's standard sockets: datagrams of 1 B to 4000 B come back
whole to the socket that sent them, over two reactors and many senders; a datagram too long for the
receive buffers is dropped (and said once), and the server goes on; an unknown flag exits 2; SIGTERM
exits 0.   usage: udp_echo_server_test.py path/to/udp-echo-server"""
import socket
import subprocess
import sys

from harness import check, finish, start, stop

server_bin = sys.argv[1]

p, port = start(server_bin, "--reactors", "2")


def round_trip(sock, data, tries=3):
    """Sends `data` and returns the echo (UDP may drop, even on loopback under load: a few tries)."""
    for _ in range(tries):
        sock.sendto(data, ("127.0.0.1", port))
        try:
            got, _ = sock.recvfrom(65536)
            return got
        except socket.timeout:
            continue
    return None


senders = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(8)]
for s in senders:
    s.settimeout(2)
for size in (1, 100, 1400, 4000):
    data = bytes((i * 7 + size) % 256 for i in range(size))
    check(all(round_trip(s, data) == data for s in senders), f"a {size} B datagram comes back whole to each of 8 senders")

# A burst: 64 datagrams in flight from one socket, each with its sequence number; every one comes back.
burst = senders[0]
for i in range(64):
    burst.sendto(i.to_bytes(4, "big") * 16, ("127.0.0.1", port))
seen = set()
try:
    while len(seen) < 64:
        got, _ = burst.recvfrom(65536)
        seen.add(int.from_bytes(got[:4], "big"))
except socket.timeout:
    pass
check(len(seen) == 64, f"64 datagrams in flight all come back ({len(seen)} did)")

# Too long for a 4 KiB receive buffer: dropped with a message, and the next datagram is served.
big = senders[1]
for _ in range(50):
    big.sendto(b"x" * 60000, ("127.0.0.1", port))
check(round_trip(big, b"after") == b"after", "the server goes on after datagrams too long for its buffers")

for s in senders:
    s.close()
rc, err = stop(p)
check(rc == 0, f"SIGTERM exits 0 (got {rc})")
check(0 < err.count("did not fit") <= 2, f"the too-long datagrams are reported, not 50 times: {err.strip()[:300]!r}")

bad = subprocess.run([server_bin, "--bogus", "1"], capture_output=True, text=True, timeout=10)
check(bad.returncode == 2 and "--bogus" in bad.stderr, f"an unknown flag exits 2 naming it (got {bad.returncode})")
finish()
