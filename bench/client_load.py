"""The Python client's cost: randomd.client against the raw dbus-fast library, on one randomd.

    python3 client_load.py PACKAGE_PARENT ADDRESS ROUNDS WARMUP DURATION

Four ways of calling Quick(16), interleaved over ROUNDS rounds on the same
randomd: the asyncio client (randomd.client.aio) and a raw dbus-fast loop,
each with 16 calls in flight on one connection; the blocking client
(randomd.client) and raw dbus-fast, one call at a time.  Prints JSON: calls/s
of every round, medians, the client process's CPU time per call, and the
median over rounds of each ratio (library / raw of the same round).  bench.py
runs it (phase "client").
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time

QUICK = dict(destination="org.randomd.Random1", path="/org/randomd/Random1",
             interface="org.randomd.Random1", member="Quick", signature="u", body=[16])
INFLIGHT = 16


async def _measure(call, inflight: int, warmup: float, duration: float) -> tuple[float, float]:
    """Calls/s of *inflight* loops each awaiting call() back to back, after a warm-up,
    and the CPU time of this process per call (µs)."""
    count = 0
    running = True

    async def worker() -> None:
        nonlocal count
        while running:
            await call()
            count += 1

    workers = [asyncio.create_task(worker()) for _ in range(inflight)]
    await asyncio.sleep(warmup)
    start, cpu, before = time.perf_counter(), time.process_time(), count
    await asyncio.sleep(duration)
    calls = count - before
    rate = calls / (time.perf_counter() - start)
    cpu_us = 1e6 * (time.process_time() - cpu) / calls
    running = False
    await asyncio.gather(*workers)
    return rate, cpu_us


async def raw(address: str, inflight: int, warmup: float, duration: float) -> tuple[float, float]:
    """The stock dbus-fast asyncio bus, as a program would use it without randomd.client."""
    from dbus_fast import Message, MessageType
    from dbus_fast.aio import MessageBus

    bus = await MessageBus(bus_address=address).connect()

    async def call() -> int:
        reply = await bus.call(Message(**QUICK))
        if reply.message_type != MessageType.METHOD_RETURN:
            raise RuntimeError(reply.body)
        return int(reply.body[0])

    try:
        return await _measure(call, inflight, warmup, duration)
    finally:
        bus.disconnect()


async def client_aio(address: str, inflight: int, warmup: float,
                     duration: float) -> tuple[float, float]:
    from randomd.client import aio

    async with aio.Client(address=address) as client:
        return await _measure(lambda: client.quick(16), inflight, warmup, duration)


def client_blocking(address: str, warmup: float, duration: float) -> tuple[float, float]:
    from randomd.client import Client

    with Client(address=address) as client:
        end = time.perf_counter() + warmup
        while time.perf_counter() < end:
            client.quick(16)
        count, start, cpu = 0, time.perf_counter(), time.process_time()
        end = start + duration
        while time.perf_counter() < end:
            client.quick(16)
            count += 1
        return count / (time.perf_counter() - start), 1e6 * (time.process_time() - cpu) / count


def main(argv: list[str]) -> None:
    package_parent, address, rounds, warmup, duration = argv
    sys.path.insert(0, package_parent)
    rounds, warmup, duration = int(rounds), float(warmup), float(duration)
    modes = {
        "aio_16": lambda: asyncio.run(client_aio(address, INFLIGHT, warmup, duration)),
        "raw_16": lambda: asyncio.run(raw(address, INFLIGHT, warmup, duration)),
        "blocking_1": lambda: client_blocking(address, warmup, duration),
        "raw_1": lambda: asyncio.run(raw(address, 1, warmup, duration)),
    }
    samples: dict[str, list[float]] = {name: [] for name in modes}
    cpu: dict[str, list[float]] = {name: [] for name in modes}
    names = list(modes)
    for round_ in range(rounds):
        # Each round starts at a different mode: the machine's speed drifts.
        for name in names[round_ % 4:] + names[:round_ % 4]:
            rate, cpu_us = modes[name]()
            samples[name].append(rate)
            cpu[name].append(cpu_us)
    ratios = {
        "aio_16": [a / r for a, r in zip(samples["aio_16"], samples["raw_16"], strict=True)],
        "blocking_1": [b / r for b, r in zip(samples["blocking_1"], samples["raw_1"], strict=True)],
    }
    print(json.dumps({
        "samples": samples,
        "median": {name: statistics.median(values) for name, values in samples.items()},
        "cpu_us_per_call": {name: statistics.median(values) for name, values in cpu.items()},
        "ratio": {name: statistics.median(values) for name, values in ratios.items()},
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
