"""The SE gates' own learning rate (``train --gate-lr-scale``): which parameters, and that
an optimizer step moves them by that factor more."""

import pytest
import torch

from tlc_probe.jobs.train import TrainConfig, _optimizer, gate_parameters
from tlc_probe.models import build


def _cfg(tmp_path, model="mprnet", scale=50.0):
    return TrainConfig(model=model, task="deblur", out=str(tmp_path / "m.pt"), gate_lr_scale=scale)


def test_gate_parameters_are_the_channel_attention_heads():
    model = build("mprnet", "tiny")
    want = [p for n, p in model.named_parameters() if ".CA.conv_du." in n]
    got = gate_parameters(model)
    assert len(got) == len(want) > 0
    assert {id(p) for p in got} == {id(p) for p in want}
    assert gate_parameters(build("hinet", "tiny")) == []  # instance norm only


def test_optimizer_groups_and_one_step_moves_gates_by_the_factor(tmp_path):
    torch.manual_seed(0)
    model = build("mprnet", "tiny")
    cfg = _cfg(tmp_path, scale=50.0)
    opt = _optimizer(model, cfg)
    assert [g["lr"] for g in opt.param_groups] == [cfg.lr, 50 * cfg.lr]
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters()) and len(set(ids)) == len(ids)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = torch.rand(2, 3, 32, 32)
    out = model(x)
    loss = sum(o.abs().mean() for o in (out if isinstance(out, list | tuple) else [out]))
    loss.backward()
    opt.step()
    # Adam's first step moves every parameter with a gradient by ~lr (times the factor)
    steps = {n: float((p.detach() - before[n]).abs().max()) for n, p in model.named_parameters()}
    gate = max(v for n, v in steps.items() if ".CA.conv_du." in n)
    rest = max(v for n, v in steps.items() if ".CA.conv_du." not in n)
    assert gate == pytest.approx(50 * cfg.lr, rel=0.05)
    assert rest == pytest.approx(cfg.lr, rel=0.05)


def test_gate_scale_is_checked(tmp_path):
    with pytest.raises(ValueError, match="no SE gates"):
        _optimizer(build("hinet", "tiny"), _cfg(tmp_path, "hinet", 5.0))
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="gate_lr_scale"):
            _cfg(tmp_path, scale=bad)
    assert len(_optimizer(build("hinet", "tiny"), _cfg(tmp_path, "hinet", 1.0)).param_groups) == 1


def test_resume_with_another_gate_scale_is_refused(tmp_path):
    from tlc_probe.jobs.train import train

    kw = dict(model="nafnet", task="deblur", out=str(tmp_path / "n.pt"), iters=4, batch=2)
    kw |= dict(patch=32, n_per_photo=1, val_every=2)
    train(TrainConfig(**kw, gate_lr_scale=10.0), progress=False, stop_after=2)
    with pytest.raises(ValueError, match=r"gate_lr_scale: 10.0 -> 1.0"):
        train(TrainConfig(**kw), resume=True, progress=False)
    with pytest.raises(ValueError, match=r"iters: 4 -> 6"):
        train(TrainConfig(**{**kw, "iters": 6}, gate_lr_scale=10.0), resume=True, progress=False)
    r = train(TrainConfig(**kw, gate_lr_scale=10.0), resume=True, progress=False)
    assert r["iterations"] == 4
