"""The trainers of recbole_mml's runs: RecBole's, with recbole_mml's checkpoint handling
(:class:`RunCheckpoints`), optionally fused optimizers (:class:`FusedOptimizer`) and top-k metrics
collected without a dense user x item matrix (:class:`TopKEvaluation`); for recbole_mml's models also
repeatable across resumes, NaN-safe and with a lazy Adam for ``learner: sparse_adam``
(:class:`MMLTrainer`). RecBole's own classes are not changed."""

import itertools
import os
from functools import lru_cache

import torch

from recbole.trainer import Trainer
from recbole.utils import set_color

from recbole_mml.checkpoint import atomic_path, claim_free_name, resume_trainer
from recbole_mml.collector import TopKCollector
from recbole_mml.errors import NonFiniteLossError
from recbole_mml.optim import LazyAdam, fused
from recbole_mml.seeding import stream_seed


class RunCheckpoints:
    """Checkpoints of a run through recbole_mml, for any trainer built on RecBole's ``Trainer``.

    A save writes RecBole's checkpoint under a temporary name and renames it, so a kill during the save
    leaves the previous file whole; a run's first save never replaces another run's file (the next free
    name); a resume refuses an unusable checkpoint in one line and keeps the finished-run record
    (see :mod:`recbole_mml.checkpoint`).
    """

    checkpoint_claimed = False

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        path = kwargs.pop("saved_model_file", self.saved_model_file)
        if epoch < 0 and os.path.isfile(path):
            return  # fit's save of a resumed run with nothing left to train: epoch -1 made the next resume start over
        with atomic_path(path) as tmp:
            super()._save_checkpoint(epoch, verbose=False, saved_model_file=tmp, **kwargs)
            if path == self.saved_model_file and not self.checkpoint_claimed:  # this run's first save
                self.saved_model_file = path = claim_free_name(tmp, path)
                self.checkpoint_claimed = True
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {path}")

    def resume_checkpoint(self, resume_file):
        resume_trainer(self, resume_file)


class FusedOptimizer:
    """With ``fused_optimizer: True``, the optimizer RecBole's trainer builds (every ``_build_optimizer``
    call) is rebuilt with torch's fused kernel (:func:`~recbole_mml.optim.fused`). On one CPU thread
    RecBole's dense Adam step over Gowalla's 4.5 M embedding parameters is most of a BPR epoch."""

    def _build_optimizer(self, **kwargs):
        optimizer = super()._build_optimizer(**kwargs)
        return fused(optimizer) if self.config["fused_optimizer"] else optimizer


class TopKEvaluation:
    """Top-k metrics collected by :class:`~recbole_mml.collector.TopKCollector`: RecBole's numbers
    without its dense user x item matrix of positives (a full-ranking evaluation of RecBole's BPR on
    Gowalla's valid users took 22 s instead of 35, the rest being the score products)."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.eval_collector = TopKCollector(config)


RECBOLE_MML_MIXINS = (RunCheckpoints, FusedOptimizer, TopKEvaluation)


@lru_cache(maxsize=None)
def with_recbole_mml(trainer_class):
    """``trainer_class`` with :data:`RECBOLE_MML_MIXINS`, where it saves, resumes and evaluates as
    RecBole's ``Trainer`` does (RecBole's tree-model trainers save differently, train no optimizer,
    and are returned as they are)."""
    if issubclass(trainer_class, RunCheckpoints) or not all(
        getattr(trainer_class, name) is getattr(Trainer, name) for name in ("_save_checkpoint", "resume_checkpoint")
    ):
        return trainer_class
    return type(trainer_class.__name__, (*RECBOLE_MML_MIXINS, trainer_class), {"__module__": __name__})


class MMLTrainer(*RECBOLE_MML_MIXINS, Trainer):
    """Reseeds shuffling and negative sampling from (seed, epoch), so epoch k is the same in a fresh
    and a resumed run, and stops at the first non-finite loss, leaving the last good checkpoint."""

    def _build_optimizer(self, **kwargs):
        """RecBole's optimizers, except ``sparse_adam``: :class:`~recbole_mml.optim.LazyAdam`, which
        also takes the dense parameters RecBole's ``SparseAdam`` fails on."""
        if kwargs.get("learner", self.learner).lower() != "sparse_adam" or "params" in kwargs:
            return super()._build_optimizer(**kwargs)
        return LazyAdam(self.model, kwargs.get("learning_rate", self.learning_rate),
                        kwargs.get("weight_decay", self.weight_decay), fuse=self.config["fused_optimizer"])

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        seed = self.config["seed"]
        train_data.generator.manual_seed(stream_seed(seed, epoch_idx, "shuffle"))
        torch.manual_seed(stream_seed(seed, epoch_idx, "torch"))  # dropout and any other global draw
        sampler = getattr(self.model, "sampler", None)
        if sampler is not None:
            sampler.reseed(epoch_idx)
        loss_func = loss_func or self.model.calculate_loss
        batches = itertools.count()

        def guarded_loss(interaction):
            batch_idx = next(batches)
            losses = loss_func(interaction)
            total = sum(losses) if isinstance(losses, tuple) else losses
            if not torch.isfinite(total).all():
                raise NonFiniteLossError(
                    f"training loss became {total.item()} at epoch {epoch_idx}, batch {batch_idx}; "
                    f"stopped, last good checkpoint kept ({self.saved_model_file})"
                )
            return losses

        return super()._train_epoch(train_data, epoch_idx, guarded_loss, show_progress)
