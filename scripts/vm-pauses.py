#!/usr/bin/env python3
"""Finds out whether this machine stops running its processes while it flushes to disk.

It keeps every CPU busy with spinning processes that note each time they were not run for more than
5 ms (a pause), optionally next to a loop that writes 16 KiB into a file already filled with zeros
and calls fdatasync at a fixed rate, as the audit journal does for each group commit. For each run
it prints the time the spinners lost to pauses and, for each 10 ms slice of the wall clock's 100 ms
cycle, how many pauses ended in it. Pauses that cluster in one slice recur every 100 ms: a pattern of
the host running this virtual machine, not of the programs inside it.

    scripts/vm-pauses.py [--duration S] [--spinners N] [--rates 0,1000,2000,4000] [--dir DIR]

docs/PERFORMANCE.md (tenth session) explains what the figures mean for the audit trail.
"""

import argparse
import multiprocessing
import os
import time

PAUSE = 0.005


def spin(duration, results):
    """Busy-loops for `duration` seconds; reports each pause as (its length, the wall clock after)."""
    pauses = []
    end = time.monotonic() + duration
    last = time.monotonic()
    while last < end:
        now = time.monotonic()
        if now - last > PAUSE:
            pauses.append((now - last, time.time()))
        last = now
    results.put(pauses)


def flush(directory, rate, duration):
    """Writes 16 KiB and calls fdatasync `rate` times a second for `duration` seconds."""
    path = os.path.join(directory, "vm-pauses.data")
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o600)
    try:
        size = 64 << 20
        os.write(fd, b"\0" * size)
        os.fsync(fd)
        frame = b"x" * 16384
        start = time.monotonic()
        done = 0
        while time.monotonic() - start < duration:
            due = start + done / rate
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            os.pwrite(fd, frame, (done * len(frame)) % (size - len(frame)))
            os.fdatasync(fd)
            done += 1
    finally:
        os.close(fd)
        os.unlink(path)


def run(args, rate):
    results = multiprocessing.Queue()
    spinners = [
        multiprocessing.Process(target=spin, args=(args.duration, results))
        for _ in range(args.spinners)
    ]
    flusher = None
    if rate > 0:
        flusher = multiprocessing.Process(target=flush, args=(args.dir, rate, args.duration + 0.5))
        flusher.start()
        time.sleep(0.5)  # past the zero-fill
    for spinner in spinners:
        spinner.start()
    pauses = [pause for _ in spinners for pause in results.get()]
    for spinner in spinners:
        spinner.join()
    if flusher:
        flusher.join()
    lost = sum(length for length, _ in pauses) / args.spinners
    slices = [0] * 10
    for _, ended in pauses:
        slices[int((ended % 0.1) * 100) % 10] += 1
    label = f"{rate} flushes/s" if rate else "no flushes"
    print(
        f"{label:>16}: spinners paused {100 * lost / args.duration:4.1f}% of the time "
        f"({len(pauses)} pauses); pauses ending in each 10 ms of the 100 ms cycle: {slices}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    parser.add_argument("--spinners", type=int, default=os.cpu_count(), help="spinning processes")
    parser.add_argument("--rates", default="0,1000,2000,4000", help="flushes per second, one run each")
    parser.add_argument("--dir", default=".", help="where the flushed file goes (the disk to test)")
    args = parser.parse_args()
    for rate in (int(r) for r in args.rates.split(",")):
        run(args, rate)


if __name__ == "__main__":
    main()
