#!/usr/bin/python3
"""dash_drip.py HOST PORT N SECONDS - a slow-drip (slowloris) attack on
gambar-dash, bounded in count and time, loopback only (test helper for
t_dash_robust.sh).

N sockets from 127.0.0.3 each send the start of a request and then one
header byte a second for SECONDS. Meanwhile a client from 127.0.0.2 asks
for /metrics once every half second and times each answer. Then an idle
socket (nothing sent) checks that the server closes it. Prints:
    drip opened N held H
    legit n=K max_ms=M failures=F
    idle closed_after_s=S   (or "idle still open")"""
import http.client
import socket
import sys
import threading
import time

host, port, n, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
idle_wait = float(sys.argv[5]) if len(sys.argv) > 5 else 0

socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.3", 0))
    s.settimeout(2)
    try:
        s.connect((host, port))
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        s.setblocking(False)
        socks.append(s)
    except OSError:
        s.close()
print("drip opened %d" % len(socks), flush=True)

times, failures = [], [0]
stop = threading.Event()


def legit():
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            c = http.client.HTTPConnection(host, port, timeout=3, source_address=("127.0.0.2", 0))
            c.request("GET", "/metrics")
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status != 200 or b"gambar_dash_messages_received_total" not in body:
                failures[0] += 1
        except OSError:
            failures[0] += 1
        times.append(time.monotonic() - t0)
        stop.wait(0.5)


th = threading.Thread(target=legit)
th.start()
end = time.monotonic() + seconds
held = len(socks)
while time.monotonic() < end:
    held = 0
    for s in socks:
        if s.fileno() < 0:
            continue
        try:
            s.send(b"X")
            # the server closing shows as data (an error page) or EOF
            try:
                if s.recv(4096) == b"":
                    s.close()
                    continue
                s.close()
                continue
            except BlockingIOError:
                pass
            held += 1
        except OSError:
            s.close()
    time.sleep(1)
stop.set()
th.join()
for s in socks:
    s.close()
print("drip held %d" % held)
print("legit n=%d max_ms=%d failures=%d" % (len(times), int(max(times) * 1000) if times else -1, failures[0]))

if idle_wait > 0:
    s = socket.create_connection((host, port), timeout=idle_wait + 5)
    t0 = time.monotonic()
    try:
        data = s.recv(1)
        print("idle closed_after_s=%.1f" % (time.monotonic() - t0))
    except socket.timeout:
        print("idle still open")
    s.close()
