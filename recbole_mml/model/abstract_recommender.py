"""The shared base of recbole_mml's models: negative sampling, scoring and the selectable loss.

A backbone only says how users and items become vectors (:meth:`encode`); this base draws the
negatives on the model's device, scores positives and negatives with the loss's similarity, and
implements ``calculate_loss``, ``predict`` and ``full_sort_predict`` for every backbone.
"""

import torch
import torch.nn.functional as F

from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType

from recbole_mml.errors import ConfigError
from recbole_mml.loss import build_loss
from recbole_mml.sampler import InteractionIndex, NegativeSampler, check_sampler_args
from recbole_mml.trainer import MMLTrainer


MASKED_SCORE = -1e4


class ContrastiveRecommender(GeneralRecommender):
    """Positives come from RecBole's loader (``train_batch_size`` counts positives); N negatives
    per batch are drawn here (``num_negatives``, ``neg_distribution``, ``neg_sharing``)."""

    input_type = InputType.POINTWISE
    trainer_class = MMLTrainer

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.embedding_size = config["embedding_size"]
        self.reg_weight = config["reg_weight"]
        self.loss_fct = build_loss(config)
        self.cosine = self.loss_fct.similarity == "cosine"
        self.sampler = NegativeSampler.from_config(config, dataset)
        self.train_pairs = InteractionIndex.from_dataset(dataset, self.device) if config["neg_exclude_positives"] else None
        self._eval_cache = {}

    def cached(self, key, compute):
        """``compute()``, kept while in eval mode: weights do not change between evaluation batches.

        Cleared by ``train()``/``eval()`` and by loading weights.
        """
        if self.training:
            return compute()
        if key not in self._eval_cache:
            self._eval_cache[key] = compute()
        return self._eval_cache[key]

    def train(self, mode=True):
        self._eval_cache = {}
        return super().train(mode)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        self._eval_cache = {}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @classmethod
    def check_config(cls, config):
        """Refuse bad loss and sampler settings before any data is loaded."""
        build_loss(config)
        check_sampler_args(config["num_negatives"], config["neg_distribution"], config["neg_sharing"])
        if config["train_neg_sample_args"]["distribution"] != "none":
            raise ConfigError(
                "train_neg_sample_args: recbole_mml models draw their own negatives (num_negatives); "
                "set train_neg_sample_args to ~"
            )

    def encode(self, users):
        """``(user vectors [B, d], item table [n_items, d])`` for the users of a batch."""
        raise NotImplementedError

    def pair_scores(self, user_e, item_table, pos, neg):
        """Positive scores ``[B]`` and negative scores ``[B, N]`` (``neg`` is ``[B, N]`` or shared ``[N]``).

        Per-row negatives are gathered as vectors, unless there are so many that scoring the whole
        catalogue with one matrix product and picking the scores is cheaper in memory.
        """
        normalize_rows = self.cosine
        if self.cosine:
            user_e = F.normalize(user_e, dim=-1)
            if neg.numel() > item_table.shape[0]:  # normalise the table once, not every gathered copy
                item_table, normalize_rows = F.normalize(item_table, dim=-1), False
        if neg.dim() == 2 and neg.shape[1] * user_e.shape[1] > item_table.shape[0]:
            table = F.normalize(item_table, dim=-1) if normalize_rows else item_table
            all_scores = user_e @ table.T
            return all_scores.gather(1, pos.unsqueeze(1)).squeeze(1), all_scores.gather(1, neg)
        pos_e, neg_e = F.embedding(pos, item_table), F.embedding(neg, item_table)
        if normalize_rows:
            pos_e, neg_e = F.normalize(pos_e, dim=-1), F.normalize(neg_e, dim=-1)
        pos_scores = (user_e * pos_e).sum(-1)
        if neg.dim() == 1:
            return pos_scores, user_e @ neg_e.T
        return pos_scores, torch.bmm(neg_e, user_e.unsqueeze(-1)).squeeze(-1)

    def calculate_loss(self, interaction):
        users, pos = interaction[self.USER_ID], interaction[self.ITEM_ID]
        neg = self.sampler.sample(users.numel())
        user_e, item_table = self.encode(users)
        pos_scores, neg_scores = self.pair_scores(user_e, item_table, pos, neg)
        if self.train_pairs is not None:
            # a drawn item the user interacted with is no negative: a score this low adds 0 to every loss
            neg_scores = neg_scores.masked_fill(self.train_pairs.contains(users, neg), MASKED_SCORE)
        loss = self.loss_fct(pos_scores, neg_scores)
        if self.reg_weight:
            # L2 on the batch's own vectors (user and positive item), as SimpleX and MF-CCL do
            reg = user_e.pow(2).sum() + item_table[pos].pow(2).sum()
            loss = loss + self.reg_weight * reg / users.numel()
        return loss

    def predict(self, interaction):
        users, items = interaction[self.USER_ID], interaction[self.ITEM_ID]
        user_e, item_table = self.encode(users)
        item_e = item_table[items]
        if self.cosine:
            user_e, item_e = F.normalize(user_e, dim=-1), F.normalize(item_e, dim=-1)
        return (user_e * item_e).sum(-1)

    def full_sort_predict(self, interaction):
        user_e, item_table = self.encode(interaction[self.USER_ID])
        if self.cosine:
            user_e = F.normalize(user_e, dim=-1)
            item_table = self.cached("normalized_items", lambda: F.normalize(item_table, dim=-1))
        return (user_e @ item_table.T).view(-1)

    def other_parameter(self):
        """Extra checkpoint state: the negative sampler's generator, so a resumed run repeats."""
        return {"sampler_state": self.sampler.get_state()}

    def load_other_parameter(self, para):
        if para and "sampler_state" in para:
            self.sampler.set_state(para["sampler_state"])
