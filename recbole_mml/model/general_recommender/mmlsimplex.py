"""MMLSimpleX: the SimpleX backbone trained with the Multi-Margin Loss.

References: Mao et al., "SimpleX: A Simple and Strong Baseline for Collaborative Filtering",
CIKM 2021; Ozsoy, arXiv 2405.04614. The user vector fuses the user's embedding with an
aggregate of the items in their training history: ``gamma * e_u + (1 - gamma) * W agg(history)``.
"""

import torch
from torch import nn

from recbole.model.init import xavier_normal_initialization

from recbole_mml.errors import ConfigError
from recbole_mml.model.abstract_recommender import ContrastiveRecommender

AGGREGATORS = ("mean", "user_attention", "self_attention")


class MMLSimpleX(ContrastiveRecommender):
    """SimpleX's history aggregation (mean, user_attention or self_attention), gamma and dropout."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.gamma = config["gamma"]
        self.aggregator = config["aggregator"]
        history, _, history_len = dataset.history_item_matrix(max_history_len=config["history_len"])
        self.register_buffer("history_item_id", history.long(), persistent=False)
        self.register_buffer("history_item_len", history_len.float(), persistent=False)

        d = self.embedding_size
        self.user_embedding = self.embedding(self.n_users, d)
        self.item_embedding = self.embedding(self.n_items, d, padding_idx=0)
        self.ui_map = nn.Linear(d, d, bias=False)
        if self.aggregator != "mean":
            self.w_k = nn.Sequential(nn.Linear(d, d), nn.Tanh())
        if self.aggregator == "self_attention":
            self.w_q = nn.Linear(d, 1, bias=False)
        self.dropout = nn.Dropout(config["dropout_prob"])
        self.apply(xavier_normal_initialization)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    @classmethod
    def check_config(cls, config):
        super().check_config(config)
        if config["aggregator"] not in AGGREGATORS:
            raise ConfigError(f"aggregator: expected one of {AGGREGATORS}, got {config['aggregator']!r}")
        if not 0.0 <= float(config["gamma"]) <= 1.0:
            raise ConfigError(f"gamma: expected a value in [0, 1], got {config['gamma']!r}")

    def _aggregate(self, user_e, history_e, history_len, mask):
        if self.aggregator == "mean":
            return history_e.sum(1) / (history_len.unsqueeze(1) + 1e-10)
        key = self.w_k(history_e)
        if self.aggregator == "user_attention":
            logits = (key @ user_e.unsqueeze(2)).squeeze(2)
        else:
            logits = self.w_q(key).squeeze(2)
        attention = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=1).nan_to_num(0.0)
        return (attention.unsqueeze(1) @ history_e).squeeze(1)

    def encode(self, users):
        user_e = self.user_embedding(users)
        history = self.history_item_id[users]
        history_e = self.item_embedding(history)
        aggregated = self._aggregate(user_e, history_e, self.history_item_len[users], history > 0)
        fused = self.gamma * user_e + (1 - self.gamma) * self.ui_map(aggregated)
        return self.dropout(fused), self.item_embedding.weight
