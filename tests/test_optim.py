"""RowAdam: SparseAdam's update on the touched rows, interchangeable with SparseAdam; fused: the same
optimizer with torch's fused kernel, and through the trainers with ``fused_optimizer``."""

import importlib.util
import os

import pandas as pd
import pytest
import torch
from torch import optim

from recbole_mml.errors import ConfigError
from recbole_mml.optim import LazyAdam, RowAdam, fused
from recbole_mml.quick_start import build_config, build_trainer, prepare_data

from conftest import TINY, TINY_DATA

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("speed_switch", os.path.join(ROOT, "benchmarks", "speed_switch.py"))
switch_benchmark = importlib.util.module_from_spec(spec)
spec.loader.exec_module(switch_benchmark)


def sparse_grad(rows, values, shape):
    return torch.sparse_coo_tensor(rows.unsqueeze(0), values, shape)


@pytest.mark.parametrize("maximize", [False, True])
def test_row_adam_matches_sparse_adam_step_by_step_with_repeated_rows(maximize):
    torch.manual_seed(0)
    reference = torch.nn.Parameter(torch.randn(50, 8))
    ours = torch.nn.Parameter(reference.detach().clone())
    ref_opt = optim.SparseAdam([reference], lr=0.01, maximize=maximize)
    our_opt = RowAdam([ours], lr=0.01)
    our_opt.param_groups[0]["maximize"] = maximize
    untouched = torch.ones(50, dtype=torch.bool)
    for _ in range(20):
        rows = torch.randint(0, 40, (30,))  # repeats: the rows' gradients add up; rows 40-49 never touched
        values = torch.randn(30, 8)
        untouched[rows] = False
        for param, opt in ((reference, ref_opt), (ours, our_opt)):
            param.grad = sparse_grad(rows, values, (50, 8))
            opt.step()
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-6)
    torch.testing.assert_close(our_opt.state[ours]["exp_avg_sq"], ref_opt.state[reference]["exp_avg_sq"], rtol=0, atol=1e-7)
    assert our_opt.state[ours]["step"] == ref_opt.state[reference]["step"] == 20
    assert untouched[40:].all() and torch.equal(our_opt.state[ours]["exp_avg"][40:], torch.zeros(10, 8))


def test_row_adam_and_sparse_adam_states_load_into_each_other():
    torch.manual_seed(1)
    param = torch.nn.Parameter(torch.randn(10, 4))
    sparse = optim.SparseAdam([param], lr=0.05)
    param.grad = sparse_grad(torch.tensor([1, 3, 3]), torch.randn(3, 4), (10, 4))
    sparse.step()
    ours = RowAdam([param], lr=0.05)
    ours.load_state_dict(sparse.state_dict())
    back = optim.SparseAdam([param], lr=0.05)
    back.load_state_dict(ours.state_dict())
    assert ours.state[param]["step"] == back.state[param]["step"] == 1
    torch.testing.assert_close(back.state[param]["exp_avg"], sparse.state[param]["exp_avg"])


@pytest.mark.parametrize("make", [
    lambda p: optim.Adam(p, lr=0.01, weight_decay=1e-4, amsgrad=True),
    lambda p: optim.AdamW(p, lr=0.01, betas=(0.8, 0.99)),
    lambda p: optim.SGD(p, lr=0.1, momentum=0.9),
    lambda p: optim.Adagrad(p, lr=0.1),
])
def test_fused_keeps_groups_and_settings_and_the_update_up_to_rounding(make):
    torch.manual_seed(2)
    reference = [torch.nn.Parameter(torch.randn(40, 8)), torch.nn.Parameter(torch.randn(8))]
    ours = [torch.nn.Parameter(p.detach().clone()) for p in reference]
    start = [p.detach().clone() for p in reference]
    ref_opt = make([{"params": reference[:1]}, {"params": reference[1:], "lr": 0.003}])
    our_opt = fused(make([{"params": ours[:1]}, {"params": ours[1:], "lr": 0.003}]))
    assert type(our_opt) is type(ref_opt) and all(g["fused"] for g in our_opt.param_groups)
    assert not any(g["fused"] for g in ref_opt.param_groups)
    for ref_group, our_group in zip(ref_opt.param_groups, our_opt.param_groups):
        assert {k: v for k, v in our_group.items() if k not in ("params", "fused", "foreach")} == \
               {k: v for k, v in ref_group.items() if k not in ("params", "fused", "foreach")}
    for _ in range(30):
        grads = [torch.randn_like(p) for p in reference]
        for params, opt in ((reference, ref_opt), (ours, our_opt)):
            for param, grad in zip(params, grads):
                param.grad = grad.clone()
            opt.step()
    for ref, our, before in zip(reference, ours, start):
        torch.testing.assert_close(our, ref, rtol=1e-5, atol=1e-6)
        assert (ref - before).abs().max() > 0.01  # the steps moved the weights


def test_fused_leaves_what_torch_cannot_fuse_as_it_is():
    sparse = optim.SparseAdam([torch.nn.Parameter(torch.randn(5, 2))])
    assert fused(sparse) is sparse
    rmsprop = optim.RMSprop([torch.nn.Parameter(torch.randn(5, 2))])
    assert fused(rmsprop) is rmsprop
    complex_ = optim.Adam([torch.nn.Parameter(torch.randn(5, 2, dtype=torch.complex64))])
    assert fused(complex_) is complex_
    meta = optim.Adam([torch.nn.Parameter(torch.empty(5, 2, device="meta"))])
    assert fused(meta) is meta
    double = optim.Adam([torch.nn.Parameter(torch.randn(5, 2, dtype=torch.float64))])
    assert fused(double).param_groups[0]["fused"]  # float64 has a fused kernel too


@pytest.mark.parametrize("fuse", [False, True])
def test_fused_optimizer_reaches_recbole_and_recbole_mml_trainers(workdir, fuse):
    """RecBole's BPR (RecBole's trainer) and MMLSimpleX with ``sparse_adam`` (LazyAdam's dense part:
    the aggregation layer) get fused optimizers only when asked."""
    for model, extra in (("BPR", {}), ("MMLSimpleX", {"learner": "sparse_adam", "aggregator": "user_attention"})):
        config = build_config(model, "tiny", config_dict=dict(TINY, fused_optimizer=fuse, **extra))
        dataset, train_data, _, _ = prepare_data(config)
        optimizer = build_trainer(config, dataset, train_data).optimizer
        dense = optimizer.optimizers[-1] if isinstance(optimizer, LazyAdam) else optimizer
        assert isinstance(dense, optim.Adam) and bool(dense.param_groups[0]["fused"]) is fuse


def test_fused_optimizer_must_be_true_or_false():
    with pytest.raises(ConfigError, match="config key 'fused_optimizer': expected True or False, got 'no'"):
        build_config("BPR", "tiny", config_dict=dict(TINY, fused_optimizer="no"))


@pytest.mark.parametrize("key, labels, models", [
    ("fused_optimizer", ["BPR", "MMLSimpleX"],
     "[BPR, {label: MMLSimpleX, model: MMLSimpleX, overrides: {dropout_prob: 0.3, num_negatives: 5}}]"),
    ("csr_adjacency", ["LightGCN"], "[LightGCN]"),
    ("enmf_matmul", ["ENMF"], "[ENMF]"),
    ("retain_freed_memory", ["BPR"], "[BPR]"),
])
def test_the_speed_switch_benchmark_compares_equal_starts_on_equal_batches(workdir, key, labels, models):
    """Both arms of each model start from the same weights and take the same batches and random draws
    (MMLSimpleX's dropout and in-model negatives included): they end apart by rounding only, and
    score the same valid users alike from the same weights."""
    (workdir / "bench.yaml").write_text(
        f"datasets: [tiny]\ncommon: {{data_path: {TINY_DATA}, train_batch_size: 64}}\nmodels: {models}\n")
    switch_benchmark.main(["--config", "bench.yaml", "--key", key, "--steps", "3", "--repeats", "2", "--out", "table.csv"])
    table = pd.read_csv("table.csv").set_index("label")
    assert list(table.index) == labels and (table["batches"] >= 3).all()
    assert (table[["step_s", "on_step_s", "speedup"]] > 0).all().all()
    assert (table["apart_over_moved"] < 1e-4).all()
    assert (table[["eval_s", "on_eval_s"]] > 0).all().all() and (table["scores_apart"] < 1e-5).all()
    assert (table["eval_batches"] >= 1).all()
