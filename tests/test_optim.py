"""RowAdam: SparseAdam's update on the touched rows, interchangeable with SparseAdam."""

import pytest
import torch
from torch import optim

from recbole_mml.optim import RowAdam


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
