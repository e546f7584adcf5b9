"""RecBole checkpoints: read them under torch >= 2.6, write them atomically, find one in a folder.

A RecBole checkpoint is a pickled dict holding the Config object, so torch >= 2.6's default
``weights_only=True`` refuses it. Only RecBole's own checkpoints are read through
:func:`load_checkpoint`; every other ``torch.load`` stays safe.
"""

import contextlib
import glob
import os
import uuid

import torch


def load_checkpoint(path, device="cpu"):
    """A checkpoint written by RecBole's trainer (its Config object included)."""
    return torch.load(str(path), map_location=device, weights_only=False)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary name next to ``path``; what is written there replaces ``path`` in one rename.

    A kill during the write leaves the previous file whole and no temporary file behind. Nothing
    written (a process that saves nothing) leaves ``path`` as it was.
    """
    path = os.path.abspath(str(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), f".tmp-{uuid.uuid4().hex}{os.path.splitext(path)[1]}")
    try:
        yield tmp
        if os.path.exists(tmp):
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_checkpoint(state, path):
    """``torch.save`` through :func:`atomic_path`."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp, pickle_protocol=4)


def find_checkpoint(directory):
    """The one RecBole checkpoint (``*.pth``) in ``directory``."""
    files = sorted(glob.glob(os.path.join(directory, "*.pth")))
    if len(files) != 1:
        raise RuntimeError(f"expected one RecBole checkpoint (.pth) in {directory}, found {files}")
    return files[0]
