#!/usr/bin/env python3
"""Runs `strongroom bench` against a fresh server and shows where each phase's CPU went.

For every phase of the benchmark it prints the rate and latencies `strongroom bench` reports, then
the CPU time the server and the benchmark client each spent per request, their context switches per
request, and the share of the machine left idle (idle plus I/O wait in /proc/stat). Linux only: it
reads /proc. The figures come from the middle 60% of each phase, away from its start and end.

    cargo build --release -p strongroom
    scripts/bench-cpu.py --connections 32 --audit off
    scripts/bench-cpu.py --connections 128 --audit on

docs/PERFORMANCE.md explains how to read the output.
"""

import argparse
import glob
import os
import shutil
import subprocess
import tempfile
import time

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    """User plus system ticks of every thread of `pid`, or None once it has exited."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def context_switches(pid):
    """Voluntary plus involuntary context switches, summed over the threads of `pid`."""
    total = 0
    for status in glob.glob(f"/proc/{pid}/task/*/status"):
        try:
            for line in open(status):
                if "ctxt_switches" in line:
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def machine_idle():
    """(idle + iowait, total) jiffies of the whole machine."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:9]]
    return fields[3] + fields[4], sum(fields)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default="target/release/strongroom")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=4, help="seconds per phase")
    parser.add_argument("--audit", choices=["on", "off"], default="off")
    parser.add_argument("--port", type=int, default=9561)
    parser.add_argument("--client-threads", type=int, help="threads of the benchmark client (default: one per CPU)")
    args = parser.parse_args()

    data_dir = tempfile.mkdtemp(prefix="strongroom-bench-cpu-")
    serve = [args.binary, "serve", "--dev", "--data-dir", data_dir, "--listen", f"127.0.0.1:{args.port}"]
    if args.audit == "off":
        serve.append("--dangerous-disable-audit")
    server = subprocess.Popen(serve, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        bench = subprocess.Popen(
            [args.binary, "bench", "--endpoint", f"http://127.0.0.1:{args.port}",
             "--connections", str(args.connections), "--duration", str(args.duration)]
            + (["--client-threads", str(args.client_threads)] if args.client_threads else []),
            stdout=subprocess.PIPE, text=True)
        samples = []
        while bench.poll() is None:
            samples.append((time.monotonic(), cpu_ticks(server.pid), cpu_ticks(bench.pid),
                            context_switches(server.pid), context_switches(bench.pid), machine_idle()))
            time.sleep(0.1)
        output = bench.stdout.read()
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
    if bench.returncode != 0:
        raise SystemExit(f"strongroom bench failed:\n{output}")

    rows = [line for line in output.splitlines()
            if line.startswith("| ") and not line.startswith(("| Operation", "| ---"))]
    # The phases run back to back and end with the command; the setup before them is short.
    end = samples[-1][0]
    start = end - len(rows) * args.duration
    print(f"{'phase':30} {'req/s':>8} {'p50':>9} {'p99':>9} {'server':>10} {'client':>10}"
          f" {'switches srv/cli':>17} {'idle':>6}")
    for i, row in enumerate(rows):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        name, rate, p50, p99 = cells[0], float(cells[3].replace(",", "")), cells[4], cells[5]
        low = start + (i + 0.2) * args.duration
        high = start + (i + 0.8) * args.duration
        window = [s for s in samples if low <= s[0] <= high and s[1] is not None and s[2] is not None]
        if len(window) < 2 or rate == 0:
            print(f"{name[:30]:30} {rate:8.0f} {p50:>9} {p99:>9}   (phase too short to sample)")
            continue
        first, last = window[0], window[-1]
        requests = rate * (last[0] - first[0])
        server_us = (last[1] - first[1]) / TICKS / requests * 1e6
        client_us = (last[2] - first[2]) / TICKS / requests * 1e6
        server_switches = (last[3] - first[3]) / requests
        client_switches = (last[4] - first[4]) / requests
        idle = (last[5][0] - first[5][0]) / max(1, last[5][1] - first[5][1])
        print(f"{name[:30]:30} {rate:8.0f} {p50:>9} {p99:>9} {server_us:7.1f} µs {client_us:7.1f} µs"
              f" {server_switches:8.2f} /{client_switches:5.2f} {100 * idle:5.1f}%")


if __name__ == "__main__":
    main()
