"""Resident memory a proxy holds per idle keep-alive client connection.

  python idle.py NAME PORT PID CONNECTIONS

Opens CONNECTIONS connections to 127.0.0.1:PORT, sends one GET on each and reads
its whole answer (so the proxy has set up everything a served connection keeps),
then leaves them idle and reads the resident memory (VmRSS) of PID and its
children (nginx's workers) before and after. Prints one line:
NAME, connections, RSS before (KiB), RSS after (KiB), KiB per connection.
"""
import os
import socket
import sys
import time

name, port, pid, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])


def rss_kib(root):
    pids = [root]
    try:
        with open(f"/proc/{root}/task/{root}/children") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def served(sock):
    """Reads one answer (head and Content-Length body) from sock."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit(f"FAIL: {name} closed a connection before answering")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        sys.exit(f"FAIL: {name} answered {head.splitlines()[0]!r}")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit(f"FAIL: {name} cut an answer short")
        body += chunk


time.sleep(0.5)
before = rss_kib(pid)
conns = []
try:
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        served(s)
        conns.append(s)
    time.sleep(1.0)
    after = rss_kib(pid)
finally:
    for s in conns:
        s.close()
print(f"{name}\t{count}\t{before}\t{after}\t{(after - before) / count:.2f}", flush=True)
