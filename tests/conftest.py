"""Shared fixtures: tests run on ml-100k (inside recbole) and tiny synthetic data, on CPU."""

import os

import pytest
import torch

import recbole_mml  # noqa: F401  (applies the compatibility fixes)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Two cores: one intra-op thread per test process avoids threads fighting other processes.
torch.set_num_threads(1)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Run inside a temporary folder so checkpoints and logs never land in the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
