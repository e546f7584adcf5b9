"""The shared base of recbole_mml's models: negative sampling, scoring and the selectable loss.

A backbone only says how users and items become vectors (:meth:`encode`); this base draws the
negatives on the model's device, scores positives and negatives with the loss's similarity, and
implements ``calculate_loss``, ``predict`` and ``full_sort_predict`` for every backbone.
"""

import torch
import torch.nn.functional as F
from torch import nn

from recbole.model.abstract_recommender import GeneralRecommender
from recbole.utils import InputType

from recbole_mml.loss import build_loss
from recbole_mml.model.recbole_keys import read_recbole_keys
from recbole_mml.sampler import InteractionIndex, NegativeSampler, check_negatives_memory, check_sampler_args
from recbole_mml.train_loader import PositivePairLoader


MASKED_SCORE = -1e4


class ContrastiveRecommender(GeneralRecommender):
    """Positives come from RecBole's loader (``train_batch_size`` counts positives); negatives are
    drawn here (``num_negatives``, ``neg_distribution``, ``neg_sharing``, ``neg_pool_size``).

    With ``learner: sparse_adam`` the backbones build their embedding tables with sparse gradients
    (:meth:`embedding`) and every lookup here keeps them sparse, so an Adam step touches only the
    rows of the batch (see :mod:`recbole_mml.optim`).
    """

    input_type = InputType.POINTWISE
    train_loader_class = PositivePairLoader
    read_recbole_keys = staticmethod(read_recbole_keys)  # SimpleX's names, train_neg_sample_args

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.embedding_size = config["embedding_size"]
        self.reg_weight = config["reg_weight"]
        self.sparse_grad = str(config["learner"]).lower() == "sparse_adam"
        self.loss_fct = build_loss(config)
        self.cosine = self.loss_fct.similarity == "cosine"
        self.sampler = NegativeSampler.from_config(config, dataset)
        self.train_pairs = InteractionIndex.from_dataset(dataset, self.device) if config["neg_exclude_positives"] else None
        self._eval_cache = {}

    def embedding(self, num, dim, **kwargs):
        """An embedding table, with sparse gradients when the learner is ``sparse_adam``."""
        return nn.Embedding(num, dim, sparse=self.sparse_grad, **kwargs)

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
        check_sampler_args(config["num_negatives"], config["neg_distribution"], config["neg_sharing"],
                           config["neg_pool_size"], config["neg_alpha"])
        check_negatives_memory(config)

    def encode(self, users):
        """``(user vectors [B, d], item table [n_items, d])`` for the users of a batch."""
        raise NotImplementedError

    def lookup(self, ids, item_table):
        """Rows ``ids`` of the item table; a sparse gradient when the table is a sparse embedding's weight."""
        return F.embedding(ids, item_table, sparse=self.sparse_grad and item_table.is_leaf)

    def item_vectors(self, ids, item_table):
        """Rows ``ids`` of the item table, normalised for cosine losses.

        Many rows (more than the catalogue) are gathered from a table normalised once; with sparse
        gradients they are always normalised after the lookup, which keeps the gradient sparse.
        """
        if not self.cosine:
            return self.lookup(ids, item_table)
        if ids.numel() > item_table.shape[0] and not self.sparse_grad:
            return F.embedding(ids, F.normalize(item_table, dim=-1))
        return F.normalize(self.lookup(ids, item_table), dim=-1)

    def row_scores(self, user_e, item_table, ids):
        """``[B, N]`` scores of per-row negatives ``ids`` for (normalised) user vectors ``[B, d]``.

        Gathered as B x N vectors, unless N x d exceeds the catalogue: then scoring the whole
        catalogue with one product and picking is cheaper (not with sparse gradients, which that
        product would make dense).
        """
        if ids.shape[1] * user_e.shape[1] > item_table.shape[0] and not self.sparse_grad:
            table = F.normalize(item_table, dim=-1) if self.cosine else item_table
            return (user_e @ table.T).gather(1, ids)
        return torch.bmm(self.item_vectors(ids, item_table), user_e.unsqueeze(-1)).squeeze(-1)

    def negative_scores(self, users, user_e, item_table, pos, pos_e, negatives):
        """``[B, N']`` negative scores, training pairs masked, for every ``neg_sharing``.

        ``user_e`` and ``pos_e`` are already normalised for cosine losses. In-batch negatives are the
        other rows' positives: the ``[B, B]`` product without the diagonal's own positive, and without
        any item the row's user interacted with (another row's positive may be one).
        """
        sharing, ids = self.sampler.sharing, negatives.ids
        if sharing == "row":
            scores = self.row_scores(user_e, item_table, ids)
            mask = self.train_pairs.contains(users, ids) if self.train_pairs is not None else None
        else:
            parts, masks = [], []
            if sharing in ("in_batch", "mixed"):
                parts.append(user_e @ pos_e.T)
                same = pos.unsqueeze(0) == pos.unsqueeze(1)  # the row's own positive, wherever it repeats
                masks.append(same | self.train_pairs.contains(users, pos) if self.train_pairs is not None else same)
            if ids is not None:
                scores = user_e @ self.item_vectors(ids, item_table).T
                if negatives.picks is not None:  # each row picks its own N of the pool: only those are masked
                    scores = scores.gather(1, negatives.picks)
                    mask = self.train_pairs.contains(users, ids[negatives.picks]) if self.train_pairs is not None else None
                else:
                    mask = self.train_pairs.contains(users, ids) if self.train_pairs is not None else None
                parts.append(scores)
                masks.append(mask if mask is not None else torch.zeros_like(scores, dtype=torch.bool))
            scores, mask = (parts[0], masks[0]) if len(parts) == 1 else (torch.cat(parts, dim=1), torch.cat(masks, dim=1))
        # a drawn item the user interacted with is no negative: a score this low adds 0 to every loss
        return scores if mask is None else scores.masked_fill(mask, MASKED_SCORE)

    def calculate_loss(self, interaction):
        users, pos = interaction[self.USER_ID], interaction[self.ITEM_ID]
        negatives = self.sampler.sample(users.numel())
        user_e, item_table = self.encode(users)
        pos_raw = self.lookup(pos, item_table)
        user_n = F.normalize(user_e, dim=-1) if self.cosine else user_e
        pos_n = F.normalize(pos_raw, dim=-1) if self.cosine else pos_raw
        pos_scores = (user_n * pos_n).sum(-1)
        neg_scores = self.negative_scores(users, user_n, item_table, pos, pos_n, negatives)
        loss = self.loss_fct(pos_scores, neg_scores, users=users) if self.loss_fct.needs_users else \
            self.loss_fct(pos_scores, neg_scores)
        if self.reg_weight:
            # L2 on the batch's own vectors (user and positive item), as SimpleX and MF-CCL do
            reg = user_e.pow(2).sum() + pos_raw.pow(2).sum()
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
