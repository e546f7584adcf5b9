"""Negative items drawn inside the model, per batch, on the model's device.

RecBole's pairwise loader copies every positive row N times to attach N negatives; at N = 1000 that
is most of an epoch. Here the loader yields positives only and the model draws negatives itself.
``neg_sharing`` says where a row's N negatives come from:

- ``row``: N drawn for every positive (as the method was published): B x N vectors gathered;
- ``batch``: one set of N shared by the batch, scored with one ``[B, N]`` matrix product;
- ``pool``: a pool of ``neg_pool_size`` P items drawn per batch, scored with one ``[B, P]`` product;
  every row then picks its own N of the P (per-row negatives at the cost of a shared set);
- ``in_batch``: the batch's other positive items, no sampling (``[B, B]`` product); they follow
  the training popularity of items, whatever ``neg_distribution`` says;
- ``mixed``: in-batch plus N shared negatives drawn from ``neg_distribution``.

The generator is reseeded per epoch from (seed, epoch), so runs and resumed runs repeat.
"""

import math
import os
from dataclasses import dataclass
from typing import Optional

import torch

from recbole_mml.errors import ConfigError
from recbole_mml.seeding import stream_seed

DISTRIBUTIONS = ("uniform", "popularity")
SHARINGS = ("row", "batch", "pool", "in_batch", "mixed")


def check_sampler_args(num_negatives, distribution, sharing, pool_size=None, alpha=1.0):
    """Refuse bad sampler settings before any data is loaded; ConfigError names the key."""
    if distribution not in DISTRIBUTIONS:
        raise ConfigError(f"neg_distribution: expected one of {DISTRIBUTIONS}, got {distribution!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise ConfigError(f"neg_alpha: expected a finite number, got {alpha!r}")
    if sharing not in SHARINGS:
        raise ConfigError(f"neg_sharing: expected one of {SHARINGS}, got {sharing!r}")
    if isinstance(num_negatives, bool) or not isinstance(num_negatives, int) or num_negatives < 1:
        raise ConfigError(f"num_negatives: expected an integer >= 1, got {num_negatives!r}")
    if sharing == "pool":
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < num_negatives:
            raise ConfigError(
                f"neg_pool_size: expected an integer >= num_negatives ({num_negatives}) with neg_sharing=pool, "
                f"got {pool_size!r}"
            )


def negatives_bytes(sharing, batch_size, num_negatives, pool_size, dim):
    """A lower bound on the memory of one batch's negatives: ids (int64), scores (float32), masks (bool)
    and, for shared sets, their d-dim vectors; gradients and the loss's own buffers come on top."""
    b, n, d = batch_size, num_negatives, dim
    if sharing == "row":  # [B, N] ids, mask and scores (scoring the catalogue may avoid B x N vectors)
        return b * n * 13
    if sharing == "pool":  # P ids and vectors, [B, P] scores and mask, [B, N] picks, scores and mask
        return pool_size * (8 + 4 * d) + b * pool_size * 5 + b * n * 13
    in_batch = b * b * 5
    if sharing == "in_batch":
        return in_batch
    shared = n * (8 + 4 * d) + b * n * 5  # N ids and vectors, [B, N] scores and mask
    return shared + (in_batch if sharing == "mixed" else 0)


def device_memory_bytes(device):
    """Total memory of the training device (physical RAM for the CPU)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_negatives_memory(config):
    """Refuse negatives that cannot fit the device before any data is loaded.

    ``num_negatives=1000000000`` used to allocate gigabytes per batch (or fail with a traceback asking
    for terabytes) instead of being refused.
    """
    sharing, n, pool = config["neg_sharing"], config["num_negatives"], config["neg_pool_size"]
    batch, dim = config["train_batch_size"], config["embedding_size"]
    if not all(isinstance(v, int) for v in (batch, dim)):
        return
    need = negatives_bytes(sharing, batch, n, pool, dim)
    have = device_memory_bytes(config["device"])
    if need > have:
        key = "neg_pool_size" if sharing == "pool" and need - batch * n * 13 > batch * n * 13 else "num_negatives"
        raise ConfigError(
            f"{key}: {config[key]} with neg_sharing={sharing} and train_batch_size={batch} needs at least "
            f"{_size(need)} per batch, more than the {_size(have)} of the device ({config['device']}); "
            f"lower {key} or train_batch_size"
        )


def _size(num_bytes):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if num_bytes < 1024 or unit == "TB":
            return f"{num_bytes:.1f} {unit}" if unit != "B" else f"{num_bytes} B"
        num_bytes /= 1024


@dataclass
class Negatives:
    """One batch's negatives. ``ids``: ``[B, N]`` (row), ``[N]`` (batch, mixed), ``[P]`` (pool) or
    ``None`` (in_batch); ``picks``: ``[B, N]`` positions in the pool (pool only)."""

    ids: Optional[torch.Tensor]
    picks: Optional[torch.Tensor] = None


def _csr(rows, cols, n_rows):
    """``(indptr, indices)`` of the pairs (rows must be sorted): row r's columns are
    ``indices[indptr[r]:indptr[r + 1]]``."""
    indptr = torch.zeros(n_rows + 1, dtype=torch.int64)
    indptr[1:] = torch.bincount(rows, minlength=n_rows).cumsum(0)
    return indptr, cols


class InteractionIndex:
    """Membership test for (user, item) training pairs, to ignore sampled "negatives" the user
    interacted with (RecBole's own samplers exclude them).

    Per-row candidates (``[B, N]``): a bitmap of n_users x n_items bits (150 MB for Gowalla) answers
    B*N queries with one gather; past ``max_bitmap_bytes`` it falls back to ``searchsorted`` over
    sorted ``user * n_items + item`` keys (about 10x slower). Candidates shared by the batch
    (``[P]``): the users' or the items' histories, whichever are shorter, see :meth:`contains_shared`.
    """

    def __init__(self, users, items, n_users, n_items, device="cpu", max_bitmap_bytes=2**30):
        self.n_users, self.n_items = int(n_users), int(n_items)
        keys = torch.unique(users.long() * self.n_items + items.long())
        users, items = keys // self.n_items, keys % self.n_items
        by_item = torch.argsort(items * self.n_users + users)
        # both directions as CSR: a user's items and an item's users
        self.user_csr = tuple(t.to(device) for t in _csr(users, items, self.n_users))
        self.item_csr = tuple(t.to(device) for t in _csr(items[by_item], users[by_item], self.n_items))
        self.slot = {"items": torch.full((self.n_items,), -1, dtype=torch.int64, device=device),
                     "users": torch.full((self.n_users,), -1, dtype=torch.int64, device=device)}
        self.words = (self.n_items + 63) // 64
        if self.n_users * self.words * 8 <= max_bitmap_bytes:
            bitmap = torch.zeros(self.n_users * self.words, dtype=torch.int64)
            # distinct pairs set distinct bits of a word, so adding them is OR-ing them
            bitmap.index_put_((users * self.words + items // 64,), torch.ones_like(items) << (items % 64), accumulate=True)
            self.bitmap, self.keys = bitmap.to(device), None
        else:
            self.bitmap, self.keys = None, keys.to(device)

    def contains(self, users, items):
        """Boolean mask of ``items`` (``[B, N]``, or shared ``[N]``) that ``users`` (``[B]``) interacted with."""
        if items.dim() == 1:
            return self.contains_shared(users, items)
        users = users.unsqueeze(1)
        if self.bitmap is not None:
            words = self.bitmap[users * self.words + items // 64]
            return ((words >> (items % 64)) & 1).bool()
        query = users * self.n_items + items
        position = torch.searchsorted(self.keys, query).clamp_(max=self.keys.numel() - 1)
        return self.keys[position] == query

    def contains_shared(self, users, items):
        """``[B, P]`` mask of the shared candidates ``items`` (``[P]``, repeats allowed) in each user's history.

        Works on the batch's distinct users and walks whichever histories are shorter in total: the
        candidates' (their users looked up in a table of batch slots) or the users' (their items
        looked up in a table of candidate slots). A batch of positives over-represents heavy users (on
        Gowalla its distinct users hold about 100 items each, a uniform candidate about 18 users),
        while in-batch candidates are popular items: neither side is always the cheaper. Hits are
        few, so they are placed column by column and only rows are copied out (a row gather of bytes;
        gathering columns of a [B, P] matrix costs more than the walk).
        """
        user_set, user_of_row = torch.unique(users, return_inverse=True)
        user_len = self.user_csr[0][user_set + 1] - self.user_csr[0][user_set]
        item_len = self.item_csr[0][items + 1] - self.item_csr[0][items]
        if item_len.sum() < user_len.sum():  # every candidate column walked, repeats too
            cols, rows = self._hits(self.item_csr, items, item_len, self.slot["users"], user_set)
        else:
            item_set, item_of_col = torch.unique(items, return_inverse=True)
            rows, slots = self._hits(self.user_csr, user_set, user_len, self.slot["items"], item_set)
            rows, cols = self._spread(rows, slots, item_of_col, item_set.numel())
        mask = torch.zeros(user_set.numel(), items.numel(), dtype=torch.uint8, device=users.device)
        mask[rows, cols] = 1
        return mask.index_select(0, user_of_row).view(torch.bool)

    @staticmethod
    def _spread(rows, slots, slot_of_col, n_slots):
        """The hits ``(rows, slots)`` on distinct items, repeated for every column holding that item."""
        order = torch.argsort(slot_of_col, stable=True)
        counts = torch.bincount(slot_of_col, minlength=n_slots)
        starts = counts.cumsum(0) - counts
        per_hit = counts[slots]
        hit = torch.repeat_interleave(torch.arange(slots.numel(), device=slots.device), per_hit)
        local = torch.arange(hit.numel(), device=slots.device) - (per_hit.cumsum(0) - per_hit)[hit]
        return rows[hit], order[starts[slots][hit] + local]

    @staticmethod
    def _hits(csr, keys, lengths, slot_table, targets):
        """(key position, target position) of every history entry of ``keys`` that is in ``targets``."""
        indptr, indices = csr
        owner = torch.repeat_interleave(torch.arange(keys.numel(), device=keys.device), lengths)
        starts = indptr[keys] - (lengths.cumsum(0) - lengths)  # entry e of the walk is indices[e + starts[owner]]
        entries = indices[torch.arange(owner.numel(), device=keys.device) + starts[owner]]
        slot_table[targets] = torch.arange(targets.numel(), device=keys.device)
        slot = slot_table[entries]
        slot_table[targets] = -1
        hit = slot >= 0
        return owner[hit], slot[hit]

    @classmethod
    def from_dataset(cls, dataset, device="cpu"):
        inter = dataset.inter_feat
        return cls(torch.as_tensor(inter[dataset.uid_field]), torch.as_tensor(inter[dataset.iid_field]),
                   dataset.user_num, dataset.item_num, device)


class NegativeSampler:
    """Draws item ids in ``[1, n_items)`` (id 0 is RecBole's padding item)."""

    def __init__(self, n_items, num_negatives, distribution="uniform", sharing="row", item_counts=None,
                 alpha=1.0, replacement=True, seed=0, device="cpu", pool_size=None):
        check_sampler_args(num_negatives, distribution, sharing, pool_size, alpha)
        drawn = pool_size if sharing == "pool" else num_negatives
        weights = None
        if distribution == "popularity":
            # items without training interactions are never drawn: 0 ** alpha is inf for alpha < 0
            counts = torch.as_tensor(item_counts, dtype=torch.float64)[1:]
            weights = torch.where(counts > 0, counts.clamp(min=1) ** alpha, torch.zeros_like(counts))
            if not torch.isfinite(weights).all():
                raise ConfigError(f"neg_alpha: item count ** {alpha} overflows; expected a smaller exponent")
        available = n_items - 1 if weights is None else int((weights > 0).sum())
        if not replacement and drawn > available:
            key = "neg_pool_size" if sharing == "pool" else "num_negatives"
            raise ConfigError(
                f"{key}: {drawn} is more than the {available} items available "
                f"when sampling without replacement (neg_replacement=False)"
            )
        self.n_items, self.num_negatives, self.pool_size = n_items, num_negatives, pool_size
        self.distribution, self.sharing, self.replacement = distribution, sharing, replacement
        self.device = torch.device(device)
        self.seed = int(seed)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(self.seed)
        self.probs = None
        if distribution == "popularity" or not replacement:
            if weights is None:
                weights = torch.ones(n_items - 1, dtype=torch.float64)
            if not weights.sum() > 0:
                raise ConfigError("neg_distribution: popularity needs items with interactions")
            self.probs = (weights / weights.sum()).to(self.device)
            self.cdf = torch.cumsum(self.probs, 0).float()
            # from the last item that can be drawn on, so rounding never lands on a zero-count item
            self.cdf[int(torch.nonzero(weights).max()):] = 1.0

    def reseed(self, epoch):
        """Seed from (seed, epoch): epoch k draws the same negatives in a fresh or resumed run."""
        self.generator.manual_seed(stream_seed(self.seed, epoch, "negatives"))

    def get_state(self):
        return self.generator.get_state()

    def set_state(self, state):
        self.generator.set_state(state)

    def sample(self, batch_size):
        """The :class:`Negatives` of a batch of ``batch_size`` positives."""
        if self.sharing == "in_batch":
            return Negatives(None)
        if self.sharing == "row":
            return Negatives(self.draw((batch_size, self.num_negatives)))
        if self.sharing == "pool":
            picks = torch.randint(0, self.pool_size, (batch_size, self.num_negatives), generator=self.generator,
                                  device=self.device)
            return Negatives(self.draw((self.pool_size,)), picks)
        return Negatives(self.draw((self.num_negatives,)))

    def draw(self, shape):
        """Item ids of ``shape`` from ``neg_distribution`` (distinct along the last axis without replacement)."""
        if not self.replacement:
            probs = self.probs.expand(*shape[:-1], -1) if len(shape) > 1 else self.probs
            return torch.multinomial(probs, shape[-1], replacement=False, generator=self.generator) + 1
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
            config["neg_pool_size"],
        )
