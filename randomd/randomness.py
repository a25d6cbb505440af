"""Random numbers from the operating system's CSPRNG (never the random module)."""

import os
import secrets

# secrets draws from random.SystemRandom, that is os.urandom / getrandom(2).
_source = secrets.SystemRandom()


def random_integer(bits: int) -> int:
    """A uniformly random integer in [0, 2**bits)."""
    return _source.getrandbits(bits)


def random_bytes(count: int) -> bytes:
    """*count* random bytes."""
    return os.urandom(count)
