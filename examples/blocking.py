#!/usr/bin/python3
"""randomd from a plain Python program: a quick number, bytes, and a slow job."""

from randomd.client import Client, Error

try:
    with Client() as randomd:
        print("quick:", randomd.quick(16))
        print("bytes:", randomd.bytes(8).hex())
        job = randomd.slow(8)
        job.on_progress(lambda j: print(f"  {j.bits_done}/{j.bits} bits"))
        print("slow:", job.value)
except Error as error:
    raise SystemExit(f"randomd: {error}") from None
