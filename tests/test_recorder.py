"""TrainingRecorder: statistics recorded during training, in a plain PyTorch loop."""

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from tlc_probe import shift_table, summary
from tlc_probe.cli import main
from tlc_probe.jobs.recorder import TrainingRecorder, read_quality
from tlc_probe.store import read_stats

KEY = ["regime", "step", "site", "sample", "channel", "stat", "y", "x"]


class InputSE(nn.Module):
    """Squeeze-excitation on the input itself: the site's statistic is the input's
    channel mean, known exactly; a conv after it makes something to train."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.gate = nn.Conv2d(3, 3, 1)
        self.body = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.body(x * torch.sigmoid(self.gate(self.pool(x))))


def _data(n_steps, batch=2, size=16):
    g = torch.Generator().manual_seed(1)
    return [torch.rand(batch, 3, size, size, generator=g) for _ in range(n_steps)]


def _probe_images():
    g = torch.Generator().manual_seed(2)
    return [
        {
            "input": torch.rand(3, 40, 56, generator=g),
            "target": torch.rand(3, 40, 56, generator=g),
            "id": "p0",
        }
    ]


def _train(steps, data, recorder=None, validate=False, frozen=False):
    torch.manual_seed(0)
    model = InputSE().train()
    if frozen:  # a submodule kept in eval mode while the rest trains
        model.body.eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    kw = recorder(model) if recorder else None
    ctx = TrainingRecorder(model, **kw) if kw else None
    if ctx:
        ctx.__enter__()
    try:
        for step in steps:
            x = data[step]
            loss = (model(x) - x).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if validate:  # eval and no_grad passes between steps must not be recorded
                model.eval()
                with torch.no_grad():
                    model(torch.rand(5, 3, 16, 16))
                model.train()
                with torch.no_grad():
                    model(torch.rand(3, 3, 16, 16))
            if frozen:
                assert not model.body.training and model.gate.training
            if ctx:
                ctx.step(step)
    finally:
        if ctx:
            ctx.__exit__(None, None, None)
    return model, ctx


def test_weights_are_identical_with_and_without_the_recorder(tmp_path):
    data = _data(6)
    plain, _ = _train(range(6), data)
    rec = lambda m: dict(out=tmp_path, train_size=16, every=1, probe_images=_probe_images())  # noqa: E731
    recorded, ctx = _train(range(6), data, rec)
    assert ctx.recorded == list(range(6))
    for (k, a), b in zip(plain.state_dict().items(), recorded.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_rows_exactly_at_the_recorded_steps_with_the_training_batch_statistic(tmp_path):
    data = _data(7)
    rec = lambda m: dict(out=tmp_path, train_size=16, every=3, probe_images=_probe_images())  # noqa: E731
    _, ctx = _train(range(7), data, rec, validate=True)
    assert ctx.recorded == [0, 3, 6]
    df = read_stats(tmp_path)
    for regime in ("train", "whole", "tlc"):
        assert sorted(df[df.regime == regime]["step"].unique()) == [0, 3, 6], regime
    train = df[df.regime == "train"]
    assert len(train) == 3 * 2 * 3  # steps x batch (not the 5 validation samples) x channels
    for step in (0, 3, 6):
        got = train[train.step == step].sort_values(["sample", "channel"])["value"].to_numpy()
        expected = data[step].mean(dim=(2, 3)).flatten().numpy()  # the input's channel means
        assert got == pytest.approx(expected, abs=1e-6)
    q = read_quality(tmp_path)
    assert sorted(q["step"].unique()) == [0, 3, 6] and set(q["regime"]) == {"whole", "tlc"}
    assert q["psnr"].notna().all()


def test_resume_continues_the_store_without_duplicate_steps(tmp_path):
    data = _data(8)
    rec = lambda m: dict(  # noqa: E731
        out=tmp_path, train_size=16, every=1, probe_images=_probe_images(), writer="rank-0"
    )
    _train(range(5), data, rec)  # steps 0..4; the "checkpoint" was at step 3
    rec2 = lambda m: dict(rec(m), first_step=3, mode="resume")  # noqa: E731
    _train(range(3, 4), data, rec2)  # killed again after step 3: step 4 must be gone
    assert sorted(read_stats(tmp_path)["step"].unique()) == [0, 1, 2, 3]
    assert sorted(read_quality(tmp_path)["step"].tolist()) == sorted([0, 1, 2, 3] * 2)
    _train(range(3, 8), data, rec2)
    df = read_stats(tmp_path)
    assert sorted(df["step"].unique()) == list(range(8))
    assert not df.duplicated(KEY).any()
    assert sorted(read_quality(tmp_path)["step"].tolist()) == sorted(list(range(8)) * 2)
    with pytest.raises(FileExistsError, match="mode='resume'"):
        _train(range(1), data, rec)
    with pytest.raises(ValueError, match="other settings"):
        _train(range(1), data, lambda m: dict(rec(m), every=2, mode="resume"))
    with pytest.raises(ValueError, match="other settings"):
        _train(range(1), data, lambda m: dict(rec(m), writer="rank-1", mode="resume"))


def test_submodule_modes_survive_the_recorder(tmp_path):
    rec = lambda m: dict(out=tmp_path, train_size=16, every=1, probe_images=_probe_images())  # noqa: E731
    _train(range(2), _data(2), rec, frozen=True)  # asserts the modes after every step


def test_per_step_shift_equals_the_shift_of_that_step_alone(tmp_path):
    data = _data(4)
    rec = lambda m: dict(out=tmp_path, train_size=16, every=1, probe_images=_probe_images())  # noqa: E731
    _train(range(4), data, rec)
    df = read_stats(tmp_path)
    table = shift_table(df)
    assert sorted(table["step"].unique()) == [0, 1, 2, 3]
    for step in range(4):
        alone = shift_table(df[df.step == step].drop(columns="step"))
        mine = table[table.step == step].drop(columns="step").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, alone)
    # a store without steps read together keeps its own rows in the per-step summary
    plain = df[df.step == 0].assign(model="other", step=pd.NA).astype({"step": "Int64"})
    both = summary(shift_table(pd.concat([df, plain], ignore_index=True)))
    assert set(both["model"]) == {"InputSE", "other"}
    assert both.loc[both.model == "other", "step"].isna().all()
    assert sorted(both.loc[both.model == "InputSE", "step"]) == [0, 1, 2, 3]


def test_stores_without_the_step_column_still_read(tmp_path):
    old = pa.schema(
        [
            (n, t)
            for n, t in zip(
                [
                    "model",
                    "task",
                    "site",
                    "kind",
                    "depth",
                    "sample",
                    "channel",
                    "y",
                    "x",
                    "stat",
                    "value",
                ],
                [pa.string()] * 4
                + [
                    pa.int32(),
                    pa.string(),
                    pa.int32(),
                    pa.int32(),
                    pa.int32(),
                    pa.string(),
                    pa.float32(),
                ],
                strict=True,
            )
        ]
    )
    row = {
        "model": ["m"],
        "task": ["t"],
        "site": ["s"],
        "kind": ["se"],
        "depth": [0],
        "sample": ["a"],
        "channel": [0],
        "y": [None],
        "x": [None],
        "stat": ["mean"],
        "value": [1.0],
    }
    (tmp_path / "regime=whole").mkdir()
    pq.write_table(pa.table(row, schema=old), tmp_path / "regime=whole" / "part-0-000000.parquet")
    df = read_stats(tmp_path)
    assert df["step"].isna().all() and str(df["step"].dtype) == "Int64"
    data = _data(1)
    _train(range(1), data, lambda m: dict(out=tmp_path / "new", train_size=16, every=1))
    both = read_stats([tmp_path])  # old and new part files in one read
    assert both["step"].isna().sum() == 1 and (both["step"] == 0).sum() == len(both) - 1


@pytest.mark.slow
def test_train_command_records_and_plot_draws_the_dynamics(tmp_path, capsys):
    stats = tmp_path / "stats"
    argv = ["train", "--model", "nafnet", "--task", "deblur", "--iters", "40", "--batch", "4"]
    argv += ["--record-every", "10", "--record-positions", "4", "--val-every", "20"]
    assert main([*argv, "--out", str(tmp_path / "n.pt"), "--stats", str(stats)]) == 0
    assert "recorded 5 steps (0, 10, 20, 30, 40)" in capsys.readouterr().out
    df = read_stats(stats)
    assert sorted(df[df.regime == "train"]["step"].unique()) == [10, 20, 30, 40]
    for regime in ("whole", "tlc"):  # step 0: the initial model
        assert sorted(df[df.regime == regime]["step"].unique()) == [0, 10, 20, 30, 40]
    assert main(["plot", str(stats), "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig" / "nafnet-tiny-deblur-training.png").stat().st_size > 0
