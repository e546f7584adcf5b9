"""``retain_freed_memory``: a freed large block is reused without new page faults, and glibc's
starting values come back on request."""

import resource
import sys

import pytest
import torch

from recbole_mml import memory
from recbole_mml.quick_start import build_config

from conftest import TINY

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux") or memory._glibc() is None,
                                reason="mallopt is glibc's")


@pytest.fixture
def starting_values():
    yield
    memory.retain_freed_memory(False)


def faults_of_a_fresh_10mb_tensor():
    """Minor page faults while a 10 MB tensor (a dense gradient of Gowalla's item table) is made and
    filled, right after the same tensor was freed."""
    torch.zeros(40982, 64).fill_(1.0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.zeros(40982, 64).fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc_only
def test_retained_memory_is_reused_without_page_faults(starting_values):
    assert memory.retain_freed_memory(False)
    assert faults_of_a_fresh_10mb_tensor() > 1000  # mmap per block: every 4 KB page faults again (2,561)
    assert memory.retain_freed_memory(True)
    assert faults_of_a_fresh_10mb_tensor() < 100


def test_the_key_sets_the_process_allocator_and_warns_where_it_cannot(monkeypatch, starting_values):
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
