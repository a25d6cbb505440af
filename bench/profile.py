#!/usr/bin/python3
"""Profile randomd under one of the benchmark's loads: where its CPU time goes.

    bench/profile.py [--library dbus_fast|dbus_next] [--load quick1|quick|slow]
                     [--py-spy PATH] [--randomd DIR]

Starts a private bus and randomd as bench.py does, then drives it with the
C load generator: ``quick1`` is Quick at 1x1, ``quick`` at 4x16 (4 s each),
``slow`` is four rounds of 1000 Slow jobs of 16 bits at 10 ms per bit.
With --py-spy (a sampling profiler: ``pip install py-spy`` into a venv), it
prints the frames that hold the most samples; without it, randomd runs under
cProfile (which slows Python code down, so read its shares, not its times).
Run as root, like bench/run (which installs the rest).
"""

from __future__ import annotations

import argparse
import collections
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", default="dbus_fast", choices=("dbus_fast", "dbus_next"))
    parser.add_argument("--load", default="slow", choices=("quick1", "quick", "slow"))
    parser.add_argument("--py-spy", metavar="PATH", help="the py-spy program to sample with")
    parser.add_argument("--randomd", type=Path, default=bench.REPO / "randomd", metavar="DIR")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    bench.ensure_user(bench.USER)
    workdir = bench.public_tempdir("randomd-profile-")
    out = Path(tempfile.mkdtemp(prefix="randomd-profile-out-"))
    out.chmod(0o777)  # randomd writes its cProfile output here
    runner = bench.Runner(workdir, bench.build(workdir, args.randomd.resolve()),
                          bench.DEFAULT_BYSTANDER_MATCH)
    service = bench.BY_KEY["randomd-fast" if args.library == "dbus_fast" else "randomd-next"]
    if not args.py_spy:
        plain = runner.argv
        runner.argv = lambda s, b: _with_cprofile(plain(s, b), out / "cprofile.out")
    bus = bench.Bus()
    spy = None
    try:
        running = runner.start(service, bus)
        time.sleep(0.3)
        if args.py_spy:
            spy = subprocess.Popen([args.py_spy, "record", "-p", str(running.pid), "-r", "1000",
                                    "-f", "raw", "-o", str(out / "py-spy.txt"), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # py-spy attaches
        for _ in range(1 if args.load != "slow" else 4):
            if args.load == "slow":
                result = runner.slow(bus)
                print(f"1000 Slow jobs: every Finished after {result['finished_s']:.3f} s",
                      file=sys.stderr)
            else:
                k, p = (1, 1) if args.load == "quick1" else (4, 16)
                result = runner.quick(bus, "service", k, p, 0.2, 4, running.pid)
                print(f"Quick {k}x{p}: {result['calls_per_s']:.0f} calls/s, p50 "
                      f"{result['p50_us']:.0f} µs", file=sys.stderr)
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        running.process.terminate()  # randomd exits cleanly; cProfile writes its file
        running.process.wait(10)
        running.stop()
    finally:
        bus.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    try:
        if args.py_spy:
            _print_samples(out / "py-spy.txt", args.top)
        else:
            stats = pstats.Stats(str(out / "cprofile.out"))
            stats.sort_stats("tottime").print_stats(args.top)
            stats.sort_stats("cumulative").print_stats(r"randomd/", args.top)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return 0


def _with_cprofile(argv_env: tuple[list[str], dict], output: Path) -> tuple[list[str], dict]:
    argv, env = argv_env
    return [argv[0], "-m", "cProfile", "-o", str(output), *argv[1:]], env


# Frames every sample passes through: the event loop and the entry point.
_OUTER = ("<module>", "main (randomd/daemon.py", "run (asyncio/runners.py", "Runner.run ",
          "BaseEventLoop.run_", "BaseEventLoop._run_once ", "Handle._run ")


def _print_samples(path: Path, top: int) -> None:
    """The frames with the most samples, by themselves and with what they call.

    py-spy leaves out the samples of a process waiting in epoll_wait: the
    shares are of the time randomd was running.
    """
    own: collections.Counter[str] = collections.Counter()
    within: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, count = line.rsplit(" ", 1)
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            if not frame.startswith(_OUTER):
                within[frame] += int(count)
    print(f"{total} samples of randomd running; shares of them:")
    print("-- in the frame itself")
    for frame, count in own.most_common(top):
        print(f"{100 * count / total:5.1f}%  {frame}")
    print("-- in the frame and what it calls")
    for frame, count in within.most_common(top):
        print(f"{100 * count / total:5.1f}%  {frame}")


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
