"""The trainer of recbole_mml's models: RecBole's Trainer, made repeatable across resumes and NaN-safe."""

import itertools

import torch

from recbole.trainer import Trainer



class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the message names epoch and batch."""


class MMLTrainer(Trainer):
    """Reseeds shuffling and negative sampling from (seed, epoch), so epoch k is the same in a fresh
    and a resumed run, and stops at the first non-finite loss, leaving the last good checkpoint."""

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        epoch_seed = self.config["seed"] * 1_000_003 + epoch_idx
        train_data.generator.manual_seed(epoch_seed)
        torch.manual_seed(epoch_seed)  # dropout and any other draw from torch's global generator
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
