"""Reliance: how much a network's output depends on the statistic each global site
aggregates.

A site's statistic is *frozen* by replacing it with a constant: its per-channel mean over
the reference images (the whole test photos, global model). A squeeze-excitation pool
then returns that constant for every image; an instance norm normalises with the constant
mean and standard deviation instead of each image's own; a channel attention applies its
mean attention matrix (per head, c x c) to every image's values instead of the matrix of
the image's own queries and keys. Reliance is what freezing does
to the output: the change of PSNR against the targets (dB) and the mean absolute change
of the output itself. A shift at a site whose freezing changes nothing does not matter for
the output, whatever its size.

Example::

    from tlc_probe.jobs.reliance import reliance

    table = reliance(model, items)  # one row per site, and "all" (every site frozen)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..metrics.image import psnr
from ..probe import Probe
from ..sites import Site, temporary_hooks
from ..tensors import eval_mode, to_model
from ..tlc.attention import attention_matrix
from .images import ImageSource, Items
from .subject import Subject, load_for_test

RELIANCE_COLUMNS = ("site", "kind", "depth", "psnr", "delta_psnr", "mean_abs_delta", "n_images")


def site_constants(
    model: nn.Module, items: Sequence[dict], probe: Probe | None = None
) -> dict[str, dict[str, torch.Tensor]]:
    """Per site, the per-channel mean over ``items`` of each statistic the site aggregates
    with the global ``model``: ``{site: {"mean": (C,), "std": (C,) for 'in'}}`` (float64,
    averaged over images and, for sites run k times per pass, over the parts); an 'attn'
    site's entry also holds ``"attn"``, its mean attention matrix (heads, c, c)."""
    probe = probe or Probe(model)
    mats: dict[str, list[torch.Tensor]] = {s.name: [] for s in probe.sites if s.kind == "attn"}

    def keeper(site: Site):
        def hook(_module, _args, qkv):
            q, k, _ = qkv.chunk(3, dim=1)
            m = site.module
            a = attention_matrix(q.double(), k.double(), m.temperature.double(), m.num_heads)
            mats[site.name].extend(a)

        return hook

    keep = [(s.module.qkv_dwconv, keeper(s)) for s in probe.sites if s.kind == "attn"]
    with eval_mode(model), torch.no_grad(), probe, temporary_hooks(keep, pre=False):
        ids = []
        for i, item in enumerate(items):  # each image read once
            model(to_model(model, item["input"][None]))
            ids.append(item.get("id", f"image{i}"))
        rows = probe.take(ids)
    means = rows.groupby(["site", "stat", "channel"], sort=True)["value"].mean()
    out: dict[str, dict[str, torch.Tensor]] = {}
    for (site, stat), g in means.groupby(level=["site", "stat"], sort=False):
        out.setdefault(site, {})[stat] = torch.tensor(g.to_numpy(np.float64))
    for site, found in mats.items():
        out.setdefault(site, {})["attn"] = torch.stack(found).mean(0)  # over calls
    return out


def _freezer(site: Site, const: dict[str, torch.Tensor]):
    """A forward hook that replaces the site's output by what it computes with the
    constant statistic."""
    if site.kind == "attn":

        def hook(module, args, out):
            _, _, v = module.qkv_dwconv(module.qkv(args[0])).chunk(3, dim=1)
            n, c, h, w = v.shape
            a = const["attn"].to(v.device, v.dtype)  # (heads, c', c')
            y = a @ v.reshape(n, a.shape[0], a.shape[1], h * w)
            return module.project_out(y.reshape(n, c, h, w))

        return hook
    if site.kind == "se":

        def hook(_module, args, out):
            c = const["mean"].to(out.device, out.dtype)  # (N, C, 1, 1), a map, or (N, C)
            return c.view((1, -1) + (1,) * (out.dim() - 2)).expand(out.shape).contiguous()

        return hook

    if hasattr(site.module, "with_stats"):  # a functional instance / layer norm

        def hook(module, args, out):
            x = args[0]
            mean = const["mean"].to(x.device, x.dtype)
            return module.with_stats(args, mean, const["std"].to(x.device, x.dtype) ** 2)

        return hook

    def hook(module, args, out):
        x = args[0]
        mean = const["mean"].to(x.device, x.dtype).view(1, -1, 1, 1)
        var = const["std"].to(x.device, x.dtype).view(1, -1, 1, 1) ** 2
        y = (x - mean) / torch.sqrt(var + getattr(module, "eps", 1e-5))
        weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
        if isinstance(weight, torch.Tensor):  # (nn.InstanceNorm2d: only when affine)
            y = y * weight.view(1, -1, 1, 1)
        return y + bias.view(1, -1, 1, 1) if isinstance(bias, torch.Tensor) else y

    return hook


def _output(model: nn.Module, x: torch.Tensor, hooks) -> torch.Tensor:
    with temporary_hooks(hooks, pre=False):
        out = model(to_model(model, x[None]))
    return (out[0] if isinstance(out, tuple | list) else out)[0].float().cpu()


def reliance(
    model: nn.Module,
    items: Sequence[dict],
    sites: Sequence[str] | None = None,
    reference: Sequence[dict] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Reliance of ``model`` (global, eval mode inside) on each site's statistic.

    Args:
        model: the network; ``items``: ``{"input", "target": (3, H, W), "id"}``, the
            images scored (e.g. :func:`tlc_probe.jobs.held_out_items`).
        sites: names of the sites to freeze one at a time (default: every executed site).
        reference: the images whose mean statistics are the constants (default:
            ``items``). With a single scored image and no other reference the constant
            is that image's own statistic and nothing changes, so score a subset of the
            reference instead.
        progress: a bar over the scored images.

    Returns:
        One row per site (in execution order) and a last row ``site = "all"`` with every
        site frozen at once; columns :data:`RELIANCE_COLUMNS`: ``psnr`` (dB, mean over
        items, output clamped to [0, 1]) with the site frozen, ``delta_psnr`` = that minus
        the unfrozen PSNR, ``mean_abs_delta`` = mean |frozen - unfrozen output| over all
        pixels and items, ``n_images``.
    """
    probe = Probe(model)
    chosen = [s for s in probe.sites if sites is None or s.name in set(sites)]
    if sites is not None and (missing := set(sites) - {s.name for s in chosen}):
        raise ValueError(f"sites {sorted(missing)} are no executed site of the model")
    const = site_constants(model, items if reference is None else reference, probe)
    runs = [(s.name, s.kind, s.depth, [s]) for s in chosen] + [("all", "all", None, chosen)]
    hooks = [[(s.module, _freezer(s, const[s.name])) for s in frozen] for *_, frozen in runs]
    scores = np.zeros((len(runs), len(items)))
    delta = np.zeros((len(runs), len(items)))
    base_scores = np.zeros(len(items))
    # image by image (one image and its outputs in memory, whatever the test set's size)
    with eval_mode(model), torch.no_grad():
        for i, item in enumerate(tqdm(items, desc="reliance", disable=not progress)):
            x, target = item["input"], item["target"].float()
            base = _output(model, x, [])
            base_scores[i] = psnr(base.clamp(0, 1), target)
            for r, pairs in enumerate(hooks):
                out = _output(model, x, pairs)
                scores[r, i] = psnr(out.clamp(0, 1), target)
                delta[r, i] = (out - base).abs().mean().item()
    base_psnr = float(base_scores.mean())
    rows = [
        {
            "site": name,
            "kind": kind,
            "depth": depth,
            "psnr": float(scores[r].mean()),
            "delta_psnr": float(scores[r].mean()) - base_psnr,
            "mean_abs_delta": float(delta[r].mean()),
            "n_images": len(items),
        }
        for r, (name, kind, depth, _) in enumerate(runs)
    ]
    out = pd.DataFrame(rows, columns=list(RELIANCE_COLUMNS))
    out["depth"] = out["depth"].astype("Int32")
    return out


def reliance_checkpoint(
    checkpoint: Subject | nn.Module | str | Path,
    n_photos: int | None = None,
    seed: int = 0,
    *,
    images: ImageSource | None = None,
    n_reference: int | None = None,
    progress: bool = False,
    **identity: Any,
) -> pd.DataFrame:
    """:func:`reliance` of a checkpoint (or subject, or own module; see
    :func:`~tlc_probe.jobs.subject.load_for_test` for ``identity``: ``model``,
    ``preset``, ``task``, ``train_size``, ``name``), with ``model`` (the run name) and
    ``task`` columns first. The images are ``images``' test set (default: the bundled
    test photos degraded with ``seed``): the constants are the means over its first
    ``n_reference`` images (all if None), the PSNR is scored on the first ``n_photos``
    of them (all if None); ``progress``: a bar over the scored images."""
    subject, items = load_for_test(checkpoint, None, seed, images=images, **identity)
    reference = items
    if n_reference is not None:
        reference = Items(items.dataset, n_reference, cache=items.cache)
    scored = Items(items.dataset, n_photos, cache=items.cache)
    table = reliance(subject.model, scored, reference=reference, progress=progress)
    table.insert(0, "task", subject.task)
    table.insert(0, "model", subject.name)
    return table
