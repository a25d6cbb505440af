#!/usr/bin/python3
"""randomd from asyncio: ten jobs at once; the long half is cancelled on randomd."""

import asyncio

from randomd.client import aio


async def main() -> None:
    async with aio.Client() as randomd:
        jobs = [await randomd.slow(bits) for bits in (4, 32) * 5]
        tasks = [asyncio.ensure_future(job) for job in jobs]
        done, pending = await asyncio.wait(tasks, timeout=8 * await randomd.slow_bit_interval())
        for task in pending:
            task.cancel()  # cancels its job on randomd, as a future is cancelled
        for job in jobs:
            await job.wait()
            print(f"job {job.id}: {job.state}", job.value if not job.error else "")


asyncio.run(main())
