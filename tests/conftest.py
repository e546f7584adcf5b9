"""Shared fixtures: tests run on a tiny committed dataset (tests/data/tiny), ml-100k (inside recbole)
where real data matters, and synthetic files, on CPU."""

import os

import pytest
import torch

from recbole_mml import compat

compat.apply()

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# 150 users in 10 groups of 10 items, 10 interactions each (8 inside the user's group): a model that
# learns the groups beats Pop by far within a few epochs, in well under a second.
TINY_DATA = os.path.join(ROOT, "tests", "data")
TINY = {"data_path": TINY_DATA, "show_progress": False, "state": "ERROR", "eval_batch_size": 100000}

# Two cores: one intra-op thread per test process avoids threads fighting other processes.
torch.set_num_threads(1)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run inside a temporary folder so checkpoints and logs never land in the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
