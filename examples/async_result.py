#!/usr/bin/python3
"""Jobs as RPyC-style AsyncResults: callbacks, an expiry, and polling ready."""

import threading

from randomd.client import Client

with Client() as randomd:
    interval = randomd.slow_bit_interval
    finished = threading.Event()
    results = {}

    def report(job):  # runs in the client's own thread
        results[job.id] = job.state
        if len(results) == 2:
            finished.set()

    quick_job = randomd.slow(4)
    slow_job = randomd.slow(64)
    slow_job.set_expiry(8 * interval)  # long before its 64 bits are done
    for job in (quick_job, slow_job):
        job.add_callback(report)
    finished.wait()

    print("quick job:", quick_job.state, quick_job.value)
    print("slow job:", slow_job.state, "(set_expiry cancelled it)" if slow_job.expired else "")
