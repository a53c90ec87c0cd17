#!/usr/bin/env python3
"""The chapter's experiments in plain CPython, for `scalelab compare`.

Each mode runs one experiment and prints one JSON object in the shape of
`scalelab run --format json` (backend, workload, workers, tasks,
numbers_per_task, seed, status, sums, total, wall_s, user_s, sys_s,
cpu_percent, cores). Times cover the experiment itself (pool start-up
included), not the interpreter's start.

CPU tasks sum `numbers` integers from `random.Random(seed * 1_000_003 + task).randint(1, 100)`,
as the chapter does; these are CPython's own numbers, so the sums differ from
scalelab's (which uses xoshiro256++), but are reproducible for a seed.

I/O tasks talk to scalelab's latency service (`--io-addr HOST:PORT`): send the
task and request index as two little-endian u64, read a little-endian u64 payload.

Modes: serial, threads, processes (multiprocessing.Pool.map), asyncio-io,
threads-io, pushpull (pyzmq PUSH/PULL, the chapter's bus).
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import resource
import socket
import struct
import sys
import threading
import time


def cpu_task(args):
    seed, task, numbers = args
    rng = random.Random(seed * 1_000_003 + task)
    return sum(rng.randint(1, 100) for _ in range(numbers))


def io_task_blocking(addr, task, requests):
    host, port = addr
    total = 0
    with socket.create_connection((host, port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for r in range(requests):
            s.sendall(struct.pack("<QQ", task, r))
            buf = b""
            while len(buf) < 8:
                chunk = s.recv(8 - len(buf))
                if not chunk:
                    raise ConnectionError("the latency service closed the connection")
                buf += chunk
            total += struct.unpack("<Q", buf)[0]
    return total


async def io_task_async(addr, task, requests):
    reader, writer = await asyncio.open_connection(*addr)
    total = 0
    try:
        for r in range(requests):
            writer.write(struct.pack("<QQ", task, r))
            await writer.drain()
            total += struct.unpack("<Q", await reader.readexactly(8))[0]
    finally:
        writer.close()
    return total


def run_serial(a):
    return [cpu_task((a.seed, t, a.numbers)) for t in range(a.tasks)]


def run_threads(a, fn):
    sums = [None] * a.tasks
    next_task = iter(range(a.tasks))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                t = next(next_task, None)
            if t is None:
                return
            sums[t] = fn(t)

    threads = [threading.Thread(target=worker) for _ in range(a.workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sums


def run_processes(a):
    with multiprocessing.Pool(a.workers) as pool:
        sums = pool.map(cpu_task, [(a.seed, t, a.numbers) for t in range(a.tasks)])
        pool.close()
        pool.join()
    return sums


def run_asyncio(a, addr):
    async def main():
        sem = asyncio.Semaphore(a.workers)

        async def one(t):
            async with sem:
                return await io_task_async(addr, t, a.requests)

        return await asyncio.gather(*(one(t) for t in range(a.tasks)))

    return list(asyncio.run(main()))


def pushpull_worker(vent, sink):
    import zmq

    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.connect(vent)
    push = ctx.socket(zmq.PUSH)
    push.connect(sink)
    while True:
        msg = pull.recv_json()
        if msg is None:
            break
        push.send_json([msg[1], cpu_task(tuple(msg))])
    pull.close(linger=0)
    push.close(linger=1000)
    ctx.term()


def run_pushpull(a):
    import zmq

    ctx = zmq.Context()
    vent = ctx.socket(zmq.PUSH)
    vent.setsockopt(zmq.LINGER, 0)
    vent_port = vent.bind_to_random_port("tcp://127.0.0.1")
    sink = ctx.socket(zmq.PULL)
    sink.setsockopt(zmq.LINGER, 0)
    sink_port = sink.bind_to_random_port("tcp://127.0.0.1")
    procs = [
        multiprocessing.Process(
            target=pushpull_worker,
            args=(f"tcp://127.0.0.1:{vent_port}", f"tcp://127.0.0.1:{sink_port}"),
        )
        for _ in range(a.workers)
    ]
    for p in procs:
        p.start()
    time.sleep(0.05)  # let the workers connect, or PUSH gives everything to the first
    for t in range(a.tasks):
        vent.send_json([a.seed, t, a.numbers])
    sums = [None] * a.tasks
    for _ in range(a.tasks):
        t, s = sink.recv_json()
        sums[t] = s
    for _ in procs:
        vent.send_json(None)
    for p in procs:
        p.join()
    vent.close()
    sink.close()
    ctx.term()
    return sums


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["serial", "threads", "processes", "asyncio-io", "threads-io", "pushpull"])
    p.add_argument("--tasks", type=int, default=8)
    p.add_argument("--numbers", type=int, default=1_000_000)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--requests", type=int, default=10)
    p.add_argument("--io-addr", default=None, help="HOST:PORT of the latency service")
    a = p.parse_args()

    io = a.mode.endswith("-io")
    addr = None
    if io:
        if not a.io_addr:
            p.error("--io-addr is needed for the I/O modes")
        host, port = a.io_addr.rsplit(":", 1)
        addr = (host, int(port))
    workers = 1 if a.mode == "serial" else a.workers
    out = {
        "backend": "cpython-" + a.mode,
        "workload": "io" if io else "cpu",
        "workers": workers,
        "tasks": a.tasks,
        "numbers_per_task": 0 if io else a.numbers,
        "seed": a.seed,
        "cores": os.cpu_count(),
    }
    r0s, r0c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    try:
        if a.mode == "serial":
            sums = run_serial(a)
        elif a.mode == "threads":
            sums = run_threads(a, lambda t: cpu_task((a.seed, t, a.numbers)))
        elif a.mode == "processes":
            sums = run_processes(a)
        elif a.mode == "asyncio-io":
            sums = run_asyncio(a, addr)
        elif a.mode == "threads-io":
            sums = run_threads(a, lambda t: io_task_blocking(addr, t, a.requests))
        else:
            sums = run_pushpull(a)
        out["status"] = "ok"
    except ImportError as e:
        sums = []
        out["status"] = "failed"
        out["reason"] = f"{e.name or e} is not installed"
    except Exception as e:  # reported, not hidden: the caller shows the reason
        sums = []
        out["status"] = "failed"
        out["reason"] = f"{type(e).__name__}: {e}"
    wall = time.perf_counter() - t0
    r1s, r1c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    user = (r1s.ru_utime - r0s.ru_utime) + (r1c.ru_utime - r0c.ru_utime)
    sys_ = (r1s.ru_stime - r0s.ru_stime) + (r1c.ru_stime - r0c.ru_stime)
    out.update(
        sums=sums,
        total=sum(s for s in sums if s is not None),
        wall_s=wall,
        user_s=user,
        sys_s=sys_,
        cpu_percent=100.0 * (user + sys_) / wall if wall > 0 else 0.0,
    )
    json.dump(out, sys.stdout)
    print()
    return 0 if out["status"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
