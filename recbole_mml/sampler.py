"""Negative items drawn inside the model, per batch, on the model's device.

RecBole's pairwise loader copies every positive row N times to attach N negatives; at N = 1000 that
is most of an epoch. Here the loader yields positives only and the model draws negatives itself:
``neg_sharing='row'`` gives every positive its own N (as the method was published),
``neg_sharing='batch'`` one set of N for the whole batch (scored with one matrix product).
The generator is seeded from the config and reseeded per epoch, so runs and resumed runs repeat.
"""

import torch

from recbole_mml.errors import ConfigError

DISTRIBUTIONS = ("uniform", "popularity")
SHARINGS = ("row", "batch")


def check_sampler_args(num_negatives, distribution, sharing):
    """Refuse bad sampler settings before any data is loaded; ConfigError names the key."""
    if distribution not in DISTRIBUTIONS:
        raise ConfigError(f"neg_distribution: expected one of {DISTRIBUTIONS}, got {distribution!r}")
    if sharing not in SHARINGS:
        raise ConfigError(f"neg_sharing: expected one of {SHARINGS}, got {sharing!r}")
    if isinstance(num_negatives, bool) or not isinstance(num_negatives, int) or num_negatives < 1:
        raise ConfigError(f"num_negatives: expected an integer >= 1, got {num_negatives!r}")


class InteractionIndex:
    """Membership test for (user, item) training pairs, to ignore sampled "negatives" the user
    interacted with (RecBole's own samplers exclude them).

    A bitmap of n_users x n_items bits (150 MB for Gowalla) answers B*N queries with one gather;
    past ``max_bitmap_bytes`` it falls back to ``searchsorted`` over sorted ``user * n_items + item``
    keys (about 10x slower).
    """

    def __init__(self, users, items, n_users, n_items, device="cpu", max_bitmap_bytes=2**30):
        self.n_items = int(n_items)
        keys = torch.unique(users.long() * self.n_items + items.long())
        self.words = (self.n_items + 63) // 64
        if int(n_users) * self.words * 8 <= max_bitmap_bytes:
            users, items = keys // self.n_items, keys % self.n_items
            bitmap = torch.zeros(int(n_users) * self.words, dtype=torch.int64)
            # distinct pairs set distinct bits of a word, so adding them is OR-ing them
            bitmap.index_put_((users * self.words + items // 64,), torch.ones_like(items) << (items % 64), accumulate=True)
            self.bitmap, self.keys = bitmap.to(device), None
        else:
            self.bitmap, self.keys = None, keys.to(device)

    def contains(self, users, items):
        """Boolean mask of ``items`` (``[B, N]``, or shared ``[N]``) that ``users`` (``[B]``) interacted with."""
        if items.dim() == 1:
            items = items.unsqueeze(0)
        users = users.unsqueeze(1)
        if self.bitmap is not None:
            words = self.bitmap[users * self.words + items // 64]
            return ((words >> (items % 64)) & 1).bool()
        query = users * self.n_items + items
        position = torch.searchsorted(self.keys, query).clamp_(max=self.keys.numel() - 1)
        return self.keys[position] == query

    @classmethod
    def from_dataset(cls, dataset, device="cpu"):
        inter = dataset.inter_feat
        return cls(torch.as_tensor(inter[dataset.uid_field]), torch.as_tensor(inter[dataset.iid_field]),
                   dataset.user_num, dataset.item_num, device)


class NegativeSampler:
    """Draws item ids in ``[1, n_items)`` (id 0 is RecBole's padding item)."""

    def __init__(self, n_items, num_negatives, distribution="uniform", sharing="row", item_counts=None,
                 alpha=1.0, replacement=True, seed=0, device="cpu"):
        check_sampler_args(num_negatives, distribution, sharing)
        if not replacement and num_negatives > n_items - 1:
            raise ConfigError(
                f"num_negatives: {num_negatives} is more than the {n_items - 1} items available "
                f"when sampling without replacement (neg_replacement=False)"
            )
        self.n_items, self.num_negatives = n_items, num_negatives
        self.distribution, self.sharing, self.replacement = distribution, sharing, replacement
        self.device = torch.device(device)
        self.seed = int(seed)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.seed)
        self.probs = None
        if distribution == "popularity" or not replacement:
            if distribution == "popularity":
                counts = torch.as_tensor(item_counts, dtype=torch.float64)[1:] ** alpha
            else:
                counts = torch.ones(n_items - 1, dtype=torch.float64)
            if counts.sum() <= 0:
                raise ConfigError("neg_distribution: popularity needs items with interactions")
            self.probs = (counts / counts.sum()).to(self.device)
            self.cdf = torch.cumsum(self.probs, 0).float()
            self.cdf[-1] = 1.0

    def reseed(self, epoch):
        """Seed from (seed, epoch): epoch k draws the same negatives in a fresh or resumed run."""
        self.generator.manual_seed(self.seed * 1_000_003 + int(epoch))

    def get_state(self):
        return self.generator.get_state()

    def set_state(self, state):
        self.generator.set_state(state)

    def sample(self, batch_size):
        """``[batch_size, N]`` ids (row sharing) or ``[N]`` ids (batch sharing)."""
        shape = (self.num_negatives,) if self.sharing == "batch" else (batch_size, self.num_negatives)
        if not self.replacement:
            probs = self.probs if self.sharing == "batch" else self.probs.expand(batch_size, -1)
            return torch.multinomial(probs, self.num_negatives, replacement=False, generator=self.generator) + 1
        if self.distribution == "uniform":
            return torch.randint(1, self.n_items, shape, generator=self.generator, device=self.device)
        uniform = torch.rand(shape, generator=self.generator, device=self.device)
        return torch.searchsorted(self.cdf, uniform, right=True).clamp_(max=self.n_items - 2) + 1

    @classmethod
    def from_config(cls, config, dataset):
        counts = None
        if config["neg_distribution"] == "popularity":
            counts = torch.zeros(dataset.item_num, dtype=torch.float64)
            counts.index_add_(0, torch.as_tensor(dataset.inter_feat[dataset.iid_field]).long(),
                              torch.ones(len(dataset.inter_feat), dtype=torch.float64))
        return cls(
            dataset.item_num, config["num_negatives"], config["neg_distribution"], config["neg_sharing"],
            counts, config["neg_alpha"], config["neg_replacement"], config["seed"], config["device"],
        )
