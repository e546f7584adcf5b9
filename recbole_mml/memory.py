"""glibc's allocator told to keep freed memory (``retain_freed_memory: True``).

A training step on CPU allocates and frees the same large tensors every time: a dense gradient of
an embedding table (10 MB for Gowalla's items), a layer of graph propagation (18 MB). By default
glibc serves such a block with a fresh ``mmap`` and unmaps it when it is freed, or trims the top
of its heap, so the next step pays page faults to zero the same memory again. With the mmap
threshold at its maximum (32 MB) and trimming off, blocks up to 32 MB come from the heap and stay
there: the process keeps its peak heap, and a step reuses memory that is already mapped. PyTorch's
CPU tuning guide gets the same by swapping in jemalloc or tcmalloc; this needs nothing installed.

Not glibc (macOS, musl): nothing is changed, and :func:`retain_freed_memory` says so.
"""

import ctypes
import ctypes.util
import functools

M_TRIM_THRESHOLD = -1  # <malloc.h>
M_MMAP_THRESHOLD = -3
# 32 MB: the largest mmap threshold glibc accepts; 2 GB, the largest int: trimming never starts
RETAIN = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 2 ** 31 - 1}
GLIBC_DEFAULTS = {M_MMAP_THRESHOLD: 128 << 10, M_TRIM_THRESHOLD: 128 << 10}  # its starting values


@functools.lru_cache(maxsize=None)
def _glibc():
    """The C library if it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError, TypeError):
        return None


def _mallopt(settings):
    libc = _glibc()
    return libc is not None and all(libc.mallopt(key, value) == 1 for key, value in settings.items())


def retain_freed_memory(on=True):
    """Keep freed blocks up to 32 MB in the heap and never trim it (``on``), or go back to glibc's
    starting values (fixed from then on: glibc raises its mmap threshold as large blocks are freed
    only until the first ``mallopt``) and hand free memory back (``on=False``). True if glibc took
    the settings."""
    if on:
        return _mallopt(RETAIN)
    done = _mallopt(GLIBC_DEFAULTS)
    if done:
        _glibc().malloc_trim(0)
    return done
