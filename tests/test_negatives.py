"""Negative sources, the sparse (lazy Adam) path, the lean positives loader and the top-k collector.

Each test states a property that the fast paths must share with the plain computation they replace.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recbole.evaluator import Collector

from recbole_mml.collector import TopKCollector, topk_indices
from recbole_mml.loss import LOSSES
from recbole_mml.model.abstract_recommender import MASKED_SCORE
from recbole_mml.quick_start import build_config, prepare_data
from recbole_mml.registry import get_model, get_trainer
from recbole_mml.sampler import InteractionIndex, NegativeSampler, SHARINGS
from recbole_mml.seeding import STREAMS, stream_seed
from recbole_mml.train_loader import PositivePairLoader

N_USERS, N_ITEMS = 40, 60


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 40-user, 60-item dataset with about 12 items per user, and its split (RecBole's RO 8/1/1)."""
    root = tmp_path_factory.mktemp("tiny")
    (root / "tiny").mkdir()
    rng = np.random.default_rng(0)
    rows = ["user_id:token\titem_id:token"]
    for u in range(N_USERS):
        rows += [f"u{u}\ti{i}" for i in rng.choice(N_ITEMS, size=12, replace=False)]
    (root / "tiny" / "tiny.inter").write_text("\n".join(rows) + "\n")
    return str(root)


def make(tiny, model="MMLMF", **overrides):
    settings = dict(data_path=tiny, state="ERROR", show_progress=False, epochs=1, train_batch_size=64,
                    num_negatives=8, margins=[0.3, 0.5, 0.7], neg_weight=10.0, eval_batch_size=4096)
    settings.update(overrides)
    config = build_config(model, "tiny", config_dict=settings)
    data = prepare_data(config)
    torch.manual_seed(0)
    return config, data, get_model(model)(config, data[1]._dataset)


# -- sampler ------------------------------------------------------------------------------------

@pytest.mark.parametrize("sharing,ids_shape,picks_shape", [
    ("row", (8, 5), None), ("batch", (5,), None), ("pool", (12,), (8, 5)), ("in_batch", None, None),
    ("mixed", (5,), None),
])
def test_sampler_shapes_range_and_seeding(sharing, ids_shape, picks_shape):
    sampler = NegativeSampler(n_items=20, num_negatives=5, sharing=sharing, seed=3, pool_size=12)
    first = sampler.sample(8)
    assert (None if first.ids is None else tuple(first.ids.shape)) == ids_shape
    assert (None if first.picks is None else tuple(first.picks.shape)) == picks_shape
    if first.ids is not None:
        assert first.ids.min() >= 1 and first.ids.max() <= 19
    if first.picks is not None:
        assert first.picks.min() >= 0 and first.picks.max() < 12
    sampler.reseed(4)
    a = sampler.sample(8)
    sampler.reseed(4)
    b = sampler.sample(8)
    for x, y in ((a.ids, b.ids), (a.picks, b.picks)):
        assert (x is None and y is None) or torch.equal(x, y)


def test_pool_smaller_than_num_negatives_is_refused():
    from recbole_mml.errors import ConfigError

    with pytest.raises(ConfigError, match="neg_pool_size"):
        NegativeSampler(n_items=20, num_negatives=5, sharing="pool", pool_size=4)


def test_popularity_sampler_follows_item_counts():
    counts = torch.tensor([0.0, 1.0, 0.0, 3.0, 6.0])  # id 0 is padding, id 2 never seen
    sampler = NegativeSampler(5, 20000, distribution="popularity", sharing="batch", item_counts=counts, seed=0)
    drawn = torch.bincount(sampler.sample(1).ids, minlength=5).double() / 20000
    torch.testing.assert_close(drawn, torch.tensor([0.0, 0.1, 0.0, 0.3, 0.6], dtype=torch.float64), atol=0.015, rtol=0)


def test_sampling_without_replacement_gives_distinct_items():
    sampler = NegativeSampler(30, 29, sharing="row", replacement=False, seed=1)
    rows = sampler.sample(4).ids
    assert all(len(set(r.tolist())) == 29 for r in rows) and rows.min() >= 1


def test_stream_seeds_differ_by_stream_and_epoch_and_repeat():
    seeds = {(s, e): stream_seed(2020, e, s) for s in STREAMS for e in range(3)}
    assert len(set(seeds.values())) == len(seeds)
    assert stream_seed(2020, 1, "negatives") == seeds[("negatives", 1)]
    assert all(0 <= v < 2**63 for v in seeds.values())


# -- the training-pair index -------------------------------------------------------------------

@pytest.mark.parametrize("max_bitmap_bytes", [2**30, 0])  # bitmap, and the sorted-keys fallback
def test_interaction_index_finds_training_pairs_for_row_and_shared_negatives(max_bitmap_bytes):
    users, items = torch.tensor([1, 1, 2, 3, 3, 1]), torch.tensor([4, 7, 4, 9, 63, 4])  # (1, 4) twice
    index = InteractionIndex(users, items, n_users=4, n_items=130, max_bitmap_bytes=max_bitmap_bytes)
    rows = index.contains(torch.tensor([1, 2]), torch.tensor([[4, 5, 7], [4, 7, 9]]))
    assert rows.tolist() == [[True, False, True], [True, False, False]]
    shared = index.contains(torch.tensor([1, 3]), torch.tensor([9, 7, 63, 127]))
    assert shared.tolist() == [[False, True, False, False], [True, False, True, False]]
    # every pair of a random catalogue: both paths agree with a set, repeated candidates included
    g = torch.Generator().manual_seed(0)
    users, items = torch.randint(0, 50, (400,), generator=g), torch.randint(1, 200, (400,), generator=g)
    index = InteractionIndex(users, items, 50, 200, max_bitmap_bytes=max_bitmap_bytes)
    pairs = set(zip(users.tolist(), items.tolist()))
    grid = index.contains(torch.arange(50), torch.arange(200).expand(50, -1))
    assert grid.tolist() == [[(u, i) in pairs for i in range(200)] for u in range(50)]
    batch = torch.randint(0, 50, (30,), generator=g)  # repeated users
    candidates = torch.cat([torch.randint(1, 200, (70,), generator=g), torch.tensor([5, 5])])
    shared = index.contains(batch, candidates)
    assert shared.tolist() == [[(u, i) in pairs for i in candidates.tolist()] for u in batch.tolist()]


def test_shared_candidates_are_masked_walking_either_side(monkeypatch):
    """The shared-candidate mask walks the shorter histories: a heavy batch user makes it walk the
    candidates' users, a popular candidate the batch users' items; both give the exact mask."""
    g = torch.Generator().manual_seed(1)
    users = torch.cat([torch.zeros(150, dtype=torch.int64), torch.randint(1, 40, (300,), generator=g)])
    items = torch.cat([torch.arange(1, 151), torch.randint(1, 200, (300,), generator=g)])
    users, items = torch.cat([users, torch.arange(40)]), torch.cat([items, torch.full((40,), 7)])  # item 7: everyone
    index = InteractionIndex(users, items, 40, 200)
    pairs = set(zip(users.tolist(), items.tolist()))
    walked = []
    hits = InteractionIndex._hits
    monkeypatch.setattr(InteractionIndex, "_hits", staticmethod(
        lambda csr, *rest: walked.append("users" if csr is index.user_csr else "items") or hits(csr, *rest)))
    for batch, candidates, side in ((torch.tensor([0, 0, 3]), torch.tensor([5, 160, 160]), "items"),
                                    (torch.tensor([3, 4, 3]), torch.tensor([7, 7, 9]), "users")):
        mask = index.contains(batch, candidates)
        assert walked.pop() == side
        assert mask.tolist() == [[(u, i) in pairs for i in candidates.tolist()] for u in batch.tolist()]


# -- scores of every negative source -----------------------------------------------------------

@pytest.mark.parametrize("sharing", SHARINGS)
def test_negative_scores_are_the_cosines_of_the_drawn_items_with_training_pairs_masked(tiny, sharing):
    config, data, model = make(tiny, neg_sharing=sharing, neg_pool_size=16, num_negatives=8)
    interaction = next(iter(data[1]))
    users, pos = interaction["user_id"], interaction["item_id"]
    negatives = model.sampler.sample(users.numel())
    user_e, table = model.encode(users)
    user_n, table_n = F.normalize(user_e, dim=-1), F.normalize(table, dim=-1)
    pos_n = table_n[pos]
    scores = model.negative_scores(users, user_n, table, pos, pos_n, negatives)
    cosine = user_n @ table_n.T
    # the items behind each column, per row
    columns = []
    if sharing in ("in_batch", "mixed"):
        columns.append(pos.expand(users.numel(), -1))
    if sharing == "row":
        columns.append(negatives.ids)
    elif sharing == "pool":
        columns.append(negatives.ids[negatives.picks])
    elif sharing in ("batch", "mixed"):
        columns.append(negatives.ids.expand(users.numel(), -1))
    items = torch.cat(columns, dim=1)
    train = set(zip(data[1]._dataset.inter_feat["user_id"].tolist(), data[1]._dataset.inter_feat["item_id"].tolist()))
    expected_mask = torch.tensor([[(u, i) in train for i in row] for u, row in zip(users.tolist(), items.tolist())])
    if sharing in ("in_batch", "mixed"):  # the row's own positive is never its negative
        own = pos.unsqueeze(1) == pos.unsqueeze(0)
        expected_mask[:, :users.numel()] |= own
        assert expected_mask[:, :users.numel()].diagonal().all()
    assert torch.equal(scores == MASKED_SCORE, expected_mask)
    torch.testing.assert_close(scores[~expected_mask], cosine.gather(1, items)[~expected_mask])


@pytest.mark.parametrize("loss_type", sorted(LOSSES))
@pytest.mark.parametrize("sharing", ["in_batch", "mixed", "pool"])
def test_every_loss_trains_with_the_batch_negative_sources(tiny, sharing, loss_type):
    config, data, model = make(tiny, neg_sharing=sharing, neg_pool_size=16, loss_type=loss_type,
                               ccl_margin=0.3, temperature=0.2)
    interaction = next(iter(data[1]))
    loss = model.calculate_loss(interaction)
    loss.backward()
    # BSL is a difference of log-mean-exps and may be negative; the others are non-negative sums
    assert torch.isfinite(loss) and (loss > 0 or loss_type == "BSL")
    assert model.item_embedding.weight.grad.abs().sum() > 0


# -- sparse gradients and lazy Adam -------------------------------------------------------------

@pytest.mark.parametrize("sharing", ["batch", "row", "pool", "mixed"])
def test_sparse_path_equals_dense_path_for_one_step(tiny, sharing):
    """Same loss and gradients (sparse ones densified); after the first Adam step the rows a batch did
    not touch are unchanged in both, and touched rows moved the same way (Adam's first update is
    lr * g / (|g| + eps); SparseAdam places eps differently, so gradients far above eps are compared)."""
    runs = {}
    for learner in ("adam", "sparse_adam"):
        config, data, model = make(tiny, learner=learner, neg_sharing=sharing, neg_pool_size=16, learning_rate=0.01)
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        interaction = next(iter(data[1]))
        model.sampler.reseed(0)
        loss = model.calculate_loss(interaction)
        trainer.optimizer.zero_grad()
        loss.backward()
        grad = model.item_embedding.weight.grad
        before = model.item_embedding.weight.detach().clone()
        runs[learner] = dict(loss=loss.item(), sparse=grad.is_sparse, before=before,
                             grad=grad.to_dense() if grad.is_sparse else grad.clone())
        trainer.optimizer.step()
        runs[learner]["after"] = model.item_embedding.weight.detach().clone()
    dense, sparse = runs["adam"], runs["sparse_adam"]
    assert not dense["sparse"] and sparse["sparse"]
    assert sparse["loss"] == pytest.approx(dense["loss"], rel=1e-6)
    torch.testing.assert_close(sparse["grad"], dense["grad"], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(sparse["before"], dense["before"], rtol=0, atol=0)
    untouched = (dense["grad"] == 0).all(dim=1)
    assert untouched.any() and (~untouched).any()
    for run in (dense, sparse):
        assert torch.equal(run["after"][untouched], run["before"][untouched])
    # |g| > 1e-4: the two eps placements differ by at most eps / sqrt(1 - beta2) / |g| = 0.3%
    large = dense["grad"].abs() > 1e-4
    step = {name: (run["after"] - run["before"])[large] for name, run in runs.items()}
    torch.testing.assert_close(step["sparse_adam"], step["adam"], rtol=5e-3, atol=0)


def test_lazy_adam_updates_dense_layers_too_and_its_state_reloads(tiny):
    config, data, model = make(tiny, model="MMLSimpleX", learner="sparse_adam", aggregator="user_attention",
                               neg_sharing="batch")
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    before = model.w_k[0].weight.detach().clone()
    trainer._train_epoch(data[1], 0)
    assert model.user_embedding.sparse and not torch.equal(model.w_k[0].weight, before)
    state = trainer.optimizer.state_dict()
    again = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    again.optimizer.load_state_dict(state)
    assert again.optimizer.state_dict()["optimizers"][0]["state"].keys() == state["optimizers"][0]["state"].keys()


# -- the lean loader -----------------------------------------------------------------------------

def test_positive_loader_yields_every_training_pair_once_in_a_seeded_order(tiny):
    config, data, model = make(tiny, train_batch_size=50)
    loader = data[1]
    assert isinstance(loader, PositivePairLoader) and loader.lean
    inter = loader._dataset.inter_feat
    expected = sorted(zip(inter["user_id"].tolist(), inter["item_id"].tolist()))
    batches = list(loader)
    assert len(batches) == len(loader) and all(len(b) <= 50 for b in batches)
    assert set(batches[0].columns) == {"user_id", "item_id"}
    seen = sorted(p for b in batches for p in zip(b["user_id"].tolist(), b["item_id"].tolist()))
    assert seen == expected
    loader.generator.manual_seed(7)
    first = torch.cat([b["item_id"] for b in loader])
    loader.generator.manual_seed(7)
    assert torch.equal(first, torch.cat([b["item_id"] for b in loader]))


# -- evaluation ------------------------------------------------------------------------------------

def test_topk_collector_equals_recboles_collector(tiny):
    config, data, model = make(tiny, topk=[3, 5], metrics=["Recall", "NDCG", "Hit", "MRR", "Precision"])
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(6, N_ITEMS + 1, generator=g)
    scores[:, 0] = -np.inf
    scores[torch.rand(scores.shape, generator=g) < 0.2] = -np.inf  # masked history
    positive_u = torch.tensor([0, 0, 1, 2, 2, 2, 4, 5, 5])
    positive_i = torch.tensor([3, 9, 1, 7, 8, 40, 2, 11, 11])  # (5, 11) repeated
    structs = []
    for collector in (Collector(config), TopKCollector(config)):
        collector.eval_batch_collect(scores, None, positive_u, positive_i)
        collector.eval_batch_collect(scores.flip(0), None, positive_u, positive_i)
        structs.append(collector.get_data_struct())
    torch.testing.assert_close(structs[1].get("rec.topk"), structs[0].get("rec.topk"))


@pytest.mark.parametrize("n_cols", [40981, 10240, 300])  # ragged tail, whole blocks, torch.topk
def test_blockwise_topk_returns_torch_topks_scores_best_first(n_cols):
    g = torch.Generator().manual_seed(n_cols)
    scores = torch.randn(7, n_cols, generator=g)
    scores[torch.rand(scores.shape, generator=g) < 0.3] = -np.inf  # masked history
    scores[1, 64:84] = 10.0 + torch.arange(20.0)  # one row's best all in one block
    scores[2, -3:] = 50.0  # another's in the ragged tail
    scores[3] = scores[3].round()  # ties
    idx = topk_indices(scores, 20)
    assert idx.shape == (7, 20) and int(idx.max()) < n_cols
    assert all(len(set(row)) == 20 for row in idx.tolist())  # distinct columns
    torch.testing.assert_close(scores.gather(1, idx), torch.topk(scores, 20, dim=-1)[0], rtol=0, atol=0)
