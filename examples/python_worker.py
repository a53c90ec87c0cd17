#!/usr/bin/env python3
"""A scalelab bus worker in Python (pyzmq), written from docs/PROTOCOL.md.

    python3 examples/python_worker.py --connect tcp://127.0.0.1:PORT --token TOKEN [--server-key KEY]

Pure Python draws about a million numbers a second: give it small tasks.
"""

import argparse
import json
import os
import socket
import sys
import time

import zmq

PROTOCOL = 1
M64 = (1 << 64) - 1
PHI = 0x9E3779B97F4A7C15


def mix64(z):
    z = (z + PHI) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Xoshiro256pp:
    def __init__(self, seed):
        self.s = [mix64((seed + k * PHI) & M64) for k in range(4)]

    def next(self):
        s = self.s
        result = (rotl((s[0] + s[3]) & M64, 23) + s[0]) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result


def value(rng, x):
    while True:
        m = x * 100
        if (m & 0xFFFFFFFF) >= 96:
            return (m >> 32) + 1
        x = rng.next() >> 32


def cpu_ns():
    return time.process_time_ns()


class Stopped(Exception):
    """The master said stop: leave without an error."""


class Link:
    def __init__(self, sock):
        self.sock = sock
        self.heartbeat = 10.0
        self.silence = 10.0
        self.last_heard = time.monotonic()
        self.last_sent = time.monotonic()
        self.pending = []  # tasks that arrived while another ran

    def send(self, msg):
        try:
            self.sock.send(json.dumps(msg, separators=(",", ":")).encode(), zmq.NOBLOCK)
        except zmq.Again:
            pass  # the master is gone or slow: its silence will end us
        self.last_sent = time.monotonic()

    def recv(self, timeout_s):
        """The next message, or None after timeout_s seconds."""
        if not self.sock.poll(int(timeout_s * 1000), zmq.POLLIN):
            return None
        frames = self.sock.recv_multipart(zmq.NOBLOCK)
        self.last_heard = time.monotonic()
        if len(frames) != 1:
            sys.exit("python worker: the master sent a message of several frames")
        try:
            msg = json.loads(frames[0].decode("utf-8"))
        except ValueError as e:
            sys.exit(f"python worker: cannot read the master's message: {e}")
        if msg.get("type") == "refused":
            sys.exit(f"python worker: refused: {msg.get('reason')}")
        if msg.get("type") == "stop":
            raise Stopped()
        return msg

    def tick(self):
        if time.monotonic() - self.last_heard > self.silence:
            sys.exit(f"python worker: the master has been silent for {self.silence:.1f} s; giving up")
        if time.monotonic() - self.last_sent >= self.heartbeat:
            self.send({"type": "heartbeat"})

    def check_in(self):
        """Between chunks of a task: heartbeats, and the master's messages."""
        self.tick()
        while True:
            msg = self.recv(0)
            if msg is None:
                return
            if msg["type"] == "task":
                self.pending.append(msg)
            elif msg["type"] != "heartbeat":
                sys.exit(f"python worker: unexpected {msg['type']} while busy")


def run_task(link, task, seed, numbers):
    rng = Xoshiro256pp(mix64(seed ^ mix64(task)))
    total = 0
    drawn = 0
    next_progress = time.monotonic() + 0.05
    while drawn + 2 <= numbers:
        r = rng.next()
        total += value(rng, r & 0xFFFFFFFF)
        total += value(rng, r >> 32)
        drawn += 2
        if drawn % 4096 == 0:
            if time.monotonic() >= next_progress:
                link.send({"type": "progress", "task": task, "done": drawn, "cpu_ns": cpu_ns()})
                next_progress = time.monotonic() + 0.05
            link.check_in()
    if numbers % 2 == 1:
        total += value(rng, rng.next() & 0xFFFFFFFF)
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connect", required=True, help="the master's endpoint")
    ap.add_argument("--token", required=True, help="the run's token")
    ap.add_argument("--server-key", help="the master's CURVE public key (encrypted bus)")
    ap.add_argument("--join-timeout", type=float, default=10.0)
    args = ap.parse_args()

    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 100)
    if args.server_key:
        # CurveZMQ: pin the master's key, with a throwaway key pair of our own.
        sock.curve_serverkey = args.server_key.encode()
        sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
    sock.connect(args.connect)
    link = Link(sock)
    link.send({"type": "join", "protocol": PROTOCOL, "token": args.token,
               "host": socket.gethostname(), "pid": os.getpid(), "cpu_ns": cpu_ns()})
    try:
        deadline = time.monotonic() + args.join_timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                sys.exit(f"python worker: no answer from {args.connect}")
            msg = link.recv(left)
            if msg is not None and msg["type"] == "welcome":
                break
        link.heartbeat = msg["heartbeat_ms"] / 1000.0
        link.silence = link.heartbeat * msg["liveness"]
        while True:
            link.tick()
            msg = link.pending.pop(0) if link.pending else link.recv(link.heartbeat)
            if msg is None or msg["type"] == "heartbeat":
                continue
            if msg["type"] != "task":
                sys.exit(f"python worker: cannot serve {msg}")
            if msg["workload"] != "cpu":
                # The io and mixed workloads are optional: say so, and the
                # master gives the task to another worker and sends a stop.
                link.send({"type": "declined", "task": msg["task"],
                           "reason": f"{msg['workload']} is not implemented by the python worker"})
                continue
            total = run_task(link, msg["task"], msg["seed"], msg["numbers"])
            link.send({"type": "done", "task": msg["task"], "sum": total, "cpu_ns": cpu_ns()})
    except Stopped:
        pass
    finally:
        sock.close()
        ctx.term()


if __name__ == "__main__":
    main()
