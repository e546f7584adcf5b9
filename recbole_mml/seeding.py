"""Seeds for the random streams of a run, derived from (seed, epoch, stream).

The loader's shuffle, the in-model negative sampler and torch's global generator (dropout) are
reseeded at every epoch so that epoch k draws the same numbers in a fresh and a resumed run. Seeding
them with one value would make the streams correlated (the same first draws in each); NumPy's
``SeedSequence`` hashes the triple into independent, well-spread seeds instead.
"""

import numpy as np

STREAMS = ("shuffle", "negatives", "torch")


def stream_seed(seed, epoch, stream):
    """A 63-bit seed for ``stream`` (one of :data:`STREAMS`) at ``epoch`` of a run seeded with ``seed``."""
    entropy = [int(seed) & 0xFFFFFFFF, int(epoch), STREAMS.index(stream)]
    low, high = (int(word) for word in np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32))
    return (high << 31) | (low >> 1)
