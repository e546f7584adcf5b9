"""``retain_freed_memory``: large blocks come from the heap instead of a fresh mmap each, and glibc's
starting values come back on request."""

import ctypes
import os
import subprocess
import sys

import pytest
import torch

from recbole_mml import memory
from recbole_mml.quick_start import build_config

from conftest import TINY

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux") or memory._glibc() is None
                                or not hasattr(memory._glibc(), "mallinfo2"), reason="mallopt and mallinfo2 are glibc's")


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2``: ``hblkhd`` is the bytes held in mmapped blocks."""
    _fields_ = [(name, ctypes.c_size_t) for name in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]


def mmapped_mb_while_a_10mb_tensor_lives():
    """MB in mmapped blocks while a 10 MB tensor (a dense gradient of Gowalla's item table) is alive."""
    mallinfo2 = memory._glibc().mallinfo2
    mallinfo2.restype = MallInfo2
    tensor = torch.zeros(40982, 64)
    mb = mallinfo2().hblkhd >> 20
    del tensor
    return mb


@glibc_only
def test_retained_memory_serves_large_blocks_from_the_heap():
    """The 10 MB block gets its own mmap (fresh pages, fresh faults, every step) under glibc's
    starting values, and comes from the heap, kept between steps, with the switch. In a fresh
    process: a heap grown by earlier tests could serve the block either way."""
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); from test_memory import memory, mmapped_mb_while_a_10mb_tensor_lives as mb\n"
             "print(memory.retain_freed_memory(False), mb(), memory.retain_freed_memory(True), mb(),"
             " memory.retain_freed_memory(False), mb())")
    out = subprocess.run([sys.executable, "-c", probe, os.path.dirname(__file__)], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out[0::2] == ["True"] * 3
    starting, retained, again = map(int, out[1::2])
    assert starting >= 10 and retained < 10 and again >= 10


def test_the_key_sets_the_process_allocator_and_warns_where_it_cannot(monkeypatch):
    calls = []
    monkeypatch.setattr("recbole_mml.quick_start.retain_freed_memory", lambda: calls.append(True) or True)
    build_config("BPR", "tiny", config_dict=TINY)
    assert calls == []
    build_config("BPR", "tiny", config_dict=dict(TINY, retain_freed_memory=True))
    assert calls == [True]
    monkeypatch.setattr(memory, "_glibc", lambda: None)
    monkeypatch.setattr("recbole_mml.quick_start.retain_freed_memory", memory.retain_freed_memory)
    with pytest.warns(UserWarning, match="retain_freed_memory: the C library is not glibc"):
        build_config("BPR", "tiny", config_dict=dict(TINY, retain_freed_memory=True))
