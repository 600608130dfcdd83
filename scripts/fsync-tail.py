#!/usr/bin/env python3
"""Measures the latency of the audit journal's kind of flush on this machine, alone and under load.

Each sample overwrites 18 KB inside a file already filled with zeros and calls fdatasync, as the
journal writer does for one group commit. The same loop runs four times: on an idle machine, next
to three CPU-bound processes, next to a loop that writes and flushes 64 MiB of zeros (another
writer on the same disk), and next to both. For each it prints the median, the 99th percentile,
the maximum, and how many flushes took over 2 ms with the time they added up to.

    scripts/fsync-tail.py [--dir DIR] [--samples N]

docs/PERFORMANCE.md explains what the figures mean for the audit trail.
"""

import argparse
import contextlib
import os
import subprocess
import sys
import time


def measure(directory, samples, label):
    path = os.path.join(directory, "fsync-tail.data")
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        size = 64 << 20
        os.write(fd, b"\0" * size)
        os.fsync(fd)
        frame = b"x" * 18000
        latencies = []
        for i in range(samples):
            start = time.perf_counter()
            os.pwrite(fd, frame, (i * len(frame)) % (size - len(frame)))
            os.fdatasync(fd)
            latencies.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        os.unlink(path)
    ordered = sorted(latencies)
    slow = [latency for latency in latencies if latency > 0.002]
    print(f"{label:32} p50 {ordered[len(ordered) // 2] * 1e6:6.0f} µs"
          f"  p99 {ordered[int(len(ordered) * 0.99)] * 1e6:7.0f} µs"
          f"  max {ordered[-1] * 1e3:6.1f} ms"
          f"  over 2 ms: {len(slow)} ({sum(slow) * 1e3:.0f} of {sum(latencies) * 1e3:.0f} ms)")


def cpu_burners(count):
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def zero_filler(target):
    script = f"while true; do dd if=/dev/zero of='{target}' bs=1M count=64 conv=fdatasync 2>/dev/null; done"
    return subprocess.Popen(["bash", "-c", script])


@contextlib.contextmanager
def running(processes):
    """Keeps `processes` running for the body of the `with`, and stops them after it."""
    try:
        yield
    finally:
        for process in processes:
            process.kill()
            process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=".", help="a directory on the disk to measure (default: here)")
    parser.add_argument("--samples", type=int, default=3000)
    args = parser.parse_args()

    measure(args.dir, args.samples, "idle")
    with running(cpu_burners(3)):
        measure(args.dir, args.samples, "three CPU-bound processes")
    target = os.path.join(args.dir, "fsync-tail.zeros")
    try:
        with running([zero_filler(target)]):
            measure(args.dir, args.samples, "64 MiB zero-fills alongside")
            with running(cpu_burners(3)):
                measure(args.dir, args.samples, "both")
    finally:
        if os.path.exists(target):
            os.unlink(target)


if __name__ == "__main__":
    main()
