"""The trainer of recbole_mml's models: RecBole's Trainer, made repeatable across resumes and NaN-safe,
with a lazy Adam for ``learner: sparse_adam``."""

import itertools

import torch

from recbole.trainer import Trainer
from recbole.utils import set_color

from recbole_mml.checkpoint import atomic_path
from recbole_mml.collector import TopKCollector
from recbole_mml.errors import NonFiniteLossError
from recbole_mml.optim import LazyAdam
from recbole_mml.seeding import stream_seed


class MMLTrainer(Trainer):
    """Reseeds shuffling and negative sampling from (seed, epoch), so epoch k is the same in a fresh
    and a resumed run, and stops at the first non-finite loss, leaving the last good checkpoint.
    Top-k metrics are collected by :class:`~recbole_mml.collector.TopKCollector`."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.eval_collector = TopKCollector(config)

    def _build_optimizer(self, **kwargs):
        """RecBole's optimizers, except ``sparse_adam``: :class:`~recbole_mml.optim.LazyAdam`, which
        also takes the dense parameters RecBole's ``SparseAdam`` fails on."""
        if kwargs.get("learner", self.learner).lower() != "sparse_adam" or "params" in kwargs:
            return super()._build_optimizer(**kwargs)
        return LazyAdam(self.model, kwargs.get("learning_rate", self.learning_rate),
                        kwargs.get("weight_decay", self.weight_decay))

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        """RecBole's checkpoint, written under a temporary name and renamed: a kill during the save
        leaves the previous checkpoint whole, so ``--resume`` always finds a readable file."""
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        with atomic_path(saved_model_file) as tmp:
            super()._save_checkpoint(epoch, verbose=False, saved_model_file=tmp, **kwargs)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

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
