"""Checkpoints: written atomically by recbole_mml's trainer, read back whole."""

import os

import pytest
import torch

from recbole_mml.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from recbole_mml.quick_start import build_config, build_trainer, prepare_data

from conftest import TINY


def test_save_is_atomic(workdir, monkeypatch):
    target = workdir / "ckpt" / "model.pth"
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, target)
    assert os.listdir(target.parent) == ["model.pth"]
    assert load_checkpoint(target)["epoch"] == 1
    before = target.read_bytes()

    def crash_mid_write(obj, f, **kwargs):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash_mid_write)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"epoch": 2}, target)
    assert os.listdir(target.parent) == ["model.pth"], "a temp file was left behind"
    assert target.read_bytes() == before, "the previous checkpoint was damaged"


def test_trainer_replaces_its_checkpoint_in_one_rename(workdir, monkeypatch):
    config = build_config("MMLMF", "tiny", config_dict=dict(TINY, epochs=1, num_negatives=5))
    dataset, train_data, _, _ = prepare_data(config)
    trainer = build_trainer(config, dataset, train_data)
    trainer._save_checkpoint(0, verbose=False)
    first = load_checkpoint(trainer.saved_model_file)
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (renames.append((src, dst)), real_replace(src, dst)))
    trainer._save_checkpoint(1, verbose=False)
    (source, target), = renames
    assert target == os.path.abspath(trainer.saved_model_file) and os.path.basename(source).startswith(".tmp-")
    assert load_checkpoint(trainer.saved_model_file)["epoch"] == 1 and first["epoch"] == 0
    assert find_checkpoint(os.path.dirname(target)) == target  # the temporary name is not a checkpoint
