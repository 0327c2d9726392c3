"""The options every command that runs a checkpoint (and its images) shares, defined once
so that one checkpoint gets one name everywhere and its outputs join."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

LAYOUT_HELP = (
    "layout of --data: gopro = ROOT/test/<seq>/{blur,sharp}/*.png (ROOT/train/ the same, "
    "used for the train regime); sots = ROOT/hazy/<id>_<k>_<beta>.png + ROOT/clear/<id>.png; "
    "pairs = ROOT/input/X + ROOT/target/X (default: pairs)"
)


def add_model_options(p: argparse.ArgumentParser, *, checkpoint: bool = True) -> None:
    """``--checkpoint`` (when ``checkpoint``), ``--model``, ``--preset``, ``--task``,
    ``--train-size`` and ``--name``."""
    if checkpoint:
        p.add_argument(
            "--checkpoint",
            required=True,
            help="tlc-probe, published (params / state_dict) or spandrel-recognised checkpoint",
        )
    p.add_argument(
        "--model",
        help="zoo architecture of a checkpoint without tlc-probe metadata (hinet, mprnet, "
        "nafnet, ffanet, restormer, spdnet; default: spandrel detects it)",
    )
    p.add_argument("--preset", help="its preset (default: official)")
    p.add_argument("--task", help="deblur | derain | dehaze (required without tlc-probe metadata)")
    p.add_argument(
        "--train-size",
        type=int,
        help="training patch size, px (required without tlc-probe metadata)",
    )
    p.add_argument(
        "--name",
        help="run name in every output (default: <name>-<preset> of a tlc-probe "
        "checkpoint, else the checkpoint file's stem); give two checkpoints of one "
        "architecture two names to compare them",
    )


def add_data_options(p: argparse.ArgumentParser, *, train: bool = False) -> None:
    """``--test-set``, ``--data``, ``--layout`` (and ``--train-data`` when ``train``),
    ``--seed`` and ``--n-per-photo``."""
    p.add_argument(
        "--test-set",
        metavar="photos|synthetic|DIR",
        help="test images: photos (the bundled photos, default), synthetic (12 generated "
        "dead-leaves scenes of 360x640 from the training distribution; its train regime "
        "draws from the same generator, so content shift is zero by construction) or a "
        "paired folder (as --data)",
    )
    p.add_argument("--data", help="test images: a paired folder (default: the bundled photos)")
    p.add_argument(
        "--layout", default="pairs", choices=("gopro", "sots", "pairs"), help=LAYOUT_HELP
    )
    if train:
        p.add_argument(
            "--train-data",
            help="paired folder of training images for the train regime (same layout; "
            "default: ROOT/train of a gopro --data, the bundled training pool without --data)",
        )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the bundled photos' degradations or of the synthetic scenes (and of "
        "collect's crops; default: 0)",
    )
    p.add_argument(
        "--n-per-photo",
        type=int,
        default=1,
        help="degradations per bundled test photo (default: 1; ignored with --data)",
    )


def identity(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of :func:`tlc_probe.jobs.subject.load_subject` (less the
    checkpoint) from the parsed options."""
    return {
        "model": args.model,
        "preset": args.preset,
        "task": args.task,
        "train_size": args.train_size,
        "name": args.name,
    }


def image_source(args: argparse.Namespace):
    """The :class:`tlc_probe.jobs.images.ImageSource` of the parsed options; checks the
    folders first (``FileNotFoundError`` naming the flag)."""
    from ..jobs.images import ImageSource
    from .paths import existing

    train_data = getattr(args, "train_data", None)
    test_set, data = getattr(args, "test_set", None), args.data
    if test_set not in (None, "photos", "synthetic"):  # a folder
        if data and data != test_set:
            raise ValueError("--test-set DIR and --data DIR name two folders: give one")
        data, test_set = test_set, None
    if test_set and data:
        raise ValueError(f"--test-set {test_set} and --data: give one of them")
    if data and getattr(args, "test_set", None) == data and not Path(data).is_dir():
        raise FileNotFoundError(f"--test-set {data}: not photos, synthetic or an existing folder")
    for flag, folder in (("--data", data), ("--train-data", train_data)):
        if folder:
            existing([folder], flag, kind="dir")
    if train_data and not data:
        raise ValueError("--train-data needs --data (the test folder of the same layout)")
    fields = {"layout": args.layout, "train_data": train_data}
    fields |= {"seed": args.seed, "n_per_photo": args.n_per_photo}
    return ImageSource.of(data or test_set or "photos", **fields)


#: What the library's parameter names read as on the command line (``FLAGS`` of every
#: command that uses these options).
FLAGS = {
    "model_name= (and preset=)": "--model (and --preset)",
    "model= (and preset=)": "--model (and --preset)",
    "task=": "--task",
    "train_size=": "--train-size",
    "train_data= (a folder of the same layout)": "--train-data DIR (same layout)",
    "train_data=": "--train-data",
    "model=": "--model",
    "preset=": "--preset ",
    "name=": "--name",
    "name must": "--name must",
    "seed must": "--seed must",
    "n_per_photo must": "--n-per-photo must",
}
