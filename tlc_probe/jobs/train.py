"""The train job (patch training): the tiny zoo models on random crops of degraded bundled photos.

AdamW with a cosine learning-rate schedule, L1 loss summed over every supervised output
(all stages of HINet / MPRNet), validation PSNR on the whole held-out test photos. The
gates that read an SE site's pooled statistic (the parameters of the module holding the
pool) may take a larger learning rate (``gate_lr_scale``): their input, a mean of
near-zero-mean residual features, is small (|mean| ~ 0.01 in MPRNet-tiny), so the gain
they need to turn it into a gate swing is far beyond what a few thousand Adam steps of
size ``lr`` reach.
Deterministic for a seed on CPU, and resumable: ``<out>`` holds the weights and the
metadata (``train_size`` = the patch size), ``<out>.resume.pt`` the optimizer and
schedule state, so the shipped checkpoint stays small.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..data.datasets import DeadLeavesPairs, SyntheticPairs, random_patches
from ..models import build
from ..sites import list_sites, module_name
from ..sizes import as_int
from ..store.atomic import check_writable
from ..store.checkpoint import atomic_save, read_checkpoint, save_checkpoint
from .evaluate import held_out_items, held_out_psnr
from .recorder import TrainingRecorder


@dataclass
class TrainConfig:
    """What to train and how. ``patch`` is the training size (pixels); ``iters`` the
    number of optimizer steps of ``batch`` patches; ``n_per_photo`` degraded versions of
    each training photo to crop from; ``deadleaves`` degraded dead-leaves images
    (``deadleaves_size`` px square) mixed into the crop pool, 0 for photos only. The test
    photos are never in the pool. ``gate_lr_scale``: learning-rate factor of the
    :func:`gate_parameters` (1: one parameter group, as without gates); AdamW's decoupled
    weight decay, lr x weight_decay per step, grows with it, and the cosine schedule
    ends every group at ``lr / 100``. A resumed training must keep every setting but
    ``out`` and ``val_every``."""

    model: str
    task: str
    out: str
    preset: str = "tiny"
    patch: int = 64
    iters: int = 2000
    batch: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    n_per_photo: int = 4
    seed: int = 0
    val_every: int = 250
    deadleaves: int = 0
    deadleaves_size: int = 384
    gate_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("patch", "iters", "batch", "n_per_photo", "val_every", "deadleaves_size"):
            setattr(self, name, as_int(getattr(self, name), name, minimum=1))
        self.deadleaves = as_int(self.deadleaves, "deadleaves", minimum=0)
        self.seed = as_int(self.seed, "seed", minimum=0)
        for name in ("lr", "gate_lr_scale"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        if Path(self.out).is_dir():
            raise IsADirectoryError(f"{self.out} is a folder: name the checkpoint file to write")


#: Settings a resumed training may change (the rest must be those of the checkpoint).
_MAY_CHANGE = ("out", "val_every")


def gate_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters that read an SE site's pooled statistic: those of every module that
    holds a global or converted ``se`` site as a direct child (MPRNet's and FFA-Net's
    ``CALayer``, NAFNet's ``sca``), each once, in module order. Empty for a model without
    SE sites (e.g. HINet)."""
    modules = dict(model.named_modules())
    seen: dict[int, torch.nn.Parameter] = {}
    for site in list_sites(model, "se"):
        parent = modules[module_name(site.name).rpartition(".")[0]]
        for p in parent.parameters():
            seen.setdefault(id(p), p)
    return list(seen.values())


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.gate_lr_scale == 1:
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    gates = gate_parameters(model)
    if not gates:
        raise ValueError(f"gate_lr_scale={cfg.gate_lr_scale}: {cfg.model} has no SE gates")
    ids = {id(p) for p in gates}
    rest = [p for p in model.parameters() if id(p) not in ids]
    groups = [
        {"params": rest, "lr": cfg.lr},
        {"params": gates, "lr": cfg.lr * cfg.gate_lr_scale},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def training_pool(cfg: TrainConfig) -> torch.utils.data.Dataset:
    """The images training crops its patches from: the bundled training photos degraded
    ``cfg.n_per_photo`` times, and ``cfg.deadleaves`` dead-leaves pairs."""
    data: torch.utils.data.Dataset = SyntheticPairs(
        cfg.task, split="train", n_per_photo=cfg.n_per_photo, seed=cfg.seed
    )
    if cfg.deadleaves:
        leaves = DeadLeavesPairs(cfg.task, cfg.deadleaves, cfg.deadleaves_size, seed=cfg.seed)
        data = torch.utils.data.ConcatDataset([data, leaves])
    return data


def _batches(cfg: TrainConfig, start: int):
    data = training_pool(cfg)
    stream = random_patches(data, cfg.patch, cfg.iters * cfg.batch, seed=cfg.seed)
    for _ in range(start * cfg.batch):  # a resumed run continues the same patch stream
        next(stream)
    for _ in range(start, cfg.iters):
        pairs = [next(stream) for _ in range(cfg.batch)]
        yield torch.stack([a for a, _ in pairs]), torch.stack([b for _, b in pairs])


def validate(model: torch.nn.Module, task: str, seed: int = 0) -> dict[str, float]:
    """Mean PSNR (dB) of the degraded inputs and of ``model``'s whole-image outputs on
    the test photos degraded for ``task``: {"input_psnr", "output_psnr"}."""
    was = model.training
    model.eval()
    scores = held_out_psnr({"output": model}, task, seed)
    model.train(was)
    return {"input_psnr": scores["input"], "output_psnr": scores["output"]}


def train(
    cfg: TrainConfig,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    *,
    record_every: int | None = None,
    stats: str | Path | None = None,
    record_positions: int = 8,
    record_mode: str | None = None,
) -> dict:
    """Train per ``cfg``; write ``cfg.out`` (weights + metadata) at every validation and at
    the end. With ``resume`` continue from ``cfg.out`` and its ``.resume.pt``;
    ``stop_after`` ends this call after that many steps (checkpointing first), as an
    interrupted run would.

    ``record_every``: record the global sites' statistics every that many steps (steps are
    numbered from 1; a fresh run also records the initial model as step 0, without train
    rows) with a :class:`~tlc_probe.jobs.recorder.TrainingRecorder` into
    ``stats`` (default ``<out stem>-stats`` beside ``out``): the train rows of that step's
    batch, and whole / tlc on the test photos with their PSNR. A resumed training continues
    that store (steps from the restart on are recorded again, never twice);
    ``record_positions``: TLC grid positions per axis; ``record_mode``: the recorder's
    mode, default 'resume' when resuming, else 'overwrite' for the default store (it
    belongs to ``out``, which is overwritten too) and 'refuse' for a given ``stats``.

    Returns {"iterations", "losses" (this call's, per step), "loss" (mean of the last 50),
    "input_psnr", "output_psnr"} (PSNR in dB), and "recorded_steps" (this call's) when
    recording."""
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    check_writable(out.parent, "out")
    state_path = out.with_name(out.name + ".resume.pt")
    model = build(cfg.model, cfg.preset)
    opt = _optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.iters, eta_min=cfg.lr / 100)
    start = 0
    if resume:
        if not out.exists() or not state_path.exists():
            raise ValueError(f"nothing to resume: need {out} and {state_path}")
        sd, meta = read_checkpoint(out)
        old = {k: v for k, v in meta.get("train_config", {}).items() if k not in _MAY_CHANGE}
        new = {k: v for k, v in asdict(cfg).items() if k not in _MAY_CHANGE}
        old.setdefault("gate_lr_scale", 1.0)  # checkpoints from before the setting
        if diff := {k: (old[k], v) for k, v in new.items() if k in old and old[k] != v}:
            said = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(diff.items()))
            raise ValueError(f"cannot resume {out}: it was trained with other settings ({said})")
        model.load_state_dict(sd)
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start = int(meta["iterations"])
    model.train()
    losses: list[float] = []
    bar = tqdm(total=cfg.iters, initial=start, desc=f"{cfg.model}/{cfg.task}", disable=not progress)
    metrics: dict[str, float] = {}

    def checkpoint(it: int) -> None:
        nonlocal metrics
        metrics = validate(model, cfg.task, cfg.seed)
        save_checkpoint(
            model,
            out,
            train_size=cfg.patch,
            iterations=it,
            seed=cfg.seed,
            task=cfg.task,
            train_config=asdict(cfg),
            **metrics,
        )
        atomic_save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, state_path)
        bar.set_postfix(
            loss=f"{sum(losses[-50:]) / max(1, len(losses[-50:])):.4f}",
            val_psnr=f"{metrics['output_psnr']:.2f}",
        )

    recorder = None
    if record_every is not None:
        recorder = TrainingRecorder(
            model,
            Path(stats) if stats is not None else out.with_name(f"{out.stem}-stats"),
            train_size=cfg.patch,
            every=record_every,
            probe_images=held_out_items(cfg.task, seed=cfg.seed),
            model_name=f"{cfg.model}-{cfg.preset}",
            task=cfg.task,
            positions=record_positions,
            first_step=start if start == 0 else start + 1,
            mode=record_mode
            or ("resume" if resume else "overwrite" if stats is None else "refuse"),
        )
    it = start
    with recorder or nullcontext():
        if recorder is not None and start == 0:
            recorder.step(0)  # the initial model: whole / tlc on the test photos, no train rows
        for x, y in _batches(cfg, start):
            loss = sum((o - y).abs().mean() for o in model.forward_all(x))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            it += 1
            if recorder is not None:
                recorder.step(it)
            bar.update(1)
            if it % 10 == 0:
                bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
            stop = stop_after is not None and it - start >= stop_after
            if it % cfg.val_every == 0 or it == cfg.iters or stop:
                checkpoint(it)
            if stop:
                break
    bar.close()
    if not metrics:  # resumed at the end already
        metrics = validate(model, cfg.task, cfg.seed)
    tail = losses[-50:]
    loss = sum(tail) / len(tail) if tail else float("nan")
    extra = {"recorded_steps": recorder.recorded} if recorder is not None else {}
    return {"iterations": it, "losses": losses, "loss": loss, **metrics, **extra}
