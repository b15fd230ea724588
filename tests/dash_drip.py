#!/usr/bin/python3
"""dash_drip.py HOST PORT N SECONDS [options] - a slow-drip (slowloris)
attack on gambar-dash, bounded in count and time, loopback only (test
helper for t_dash_robust.sh, and the measurement of issue 9).

N sockets (from --drip-from) each send the start of a request and then
one header byte every --every seconds for SECONDS, never finishing the
header. Meanwhile a client (from --probe-from) asks for /metrics every
half second and times each answer; a probe fails when it gets no 200
with the metrics within --probe-timeout seconds. With --idle S an idle
socket (nothing sent) then checks that the server closes it. Prints:
    drip opened N
    drip held H closed_by_server C
    legit n=K max_ms=M failures=F
    idle closed_after_s=S   (or "idle still open")"""
import argparse
import http.client
import socket
import threading
import time

ap = argparse.ArgumentParser()
ap.add_argument("host")
ap.add_argument("port", type=int)
ap.add_argument("n", type=int)
ap.add_argument("seconds", type=float)
ap.add_argument("idle", type=float, nargs="?", default=0)
ap.add_argument("--drip-from", default="127.0.0.3")
ap.add_argument("--probe-from", default="127.0.0.2")
ap.add_argument("--every", type=float, default=1.0)
ap.add_argument("--probe-timeout", type=float, default=3.0)
a = ap.parse_args()
host, port = a.host, a.port

socks = []
for i in range(a.n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((a.drip_from, 0))
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
            c = http.client.HTTPConnection(host, port, timeout=a.probe_timeout, source_address=(a.probe_from, 0))
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
end = time.monotonic() + a.seconds
held, closed = len(socks), 0
while time.monotonic() < end:
    held = 0
    for s in socks:
        if s.fileno() < 0:
            continue
        try:
            s.send(b"X")
            # the server closing shows as data (an error page) or EOF
            try:
                s.recv(4096)
                s.close()
                closed += 1
                continue
            except BlockingIOError:
                pass
            held += 1
        except OSError:
            s.close()
            closed += 1
    time.sleep(a.every)
stop.set()
th.join()
for s in socks:
    s.close()
print("drip held %d closed_by_server %d" % (held, closed))
print("legit n=%d max_ms=%d failures=%d" % (len(times), int(max(times) * 1000) if times else -1, failures[0]))

if a.idle > 0:
    s = socket.create_connection((host, port), timeout=a.idle + 5)
    t0 = time.monotonic()
    try:
        data = s.recv(1)
        print("idle closed_after_s=%.1f" % (time.monotonic() - t0))
    except socket.timeout:
        print("idle still open")
    s.close()
