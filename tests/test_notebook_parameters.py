"""The notebooks take a user's store through their tagged parameters cell (papermill):
notebooks 02 and 03 run end to end on statistics and a reliance table made here, of a
model that is none of the shipped ones, and show what that store holds."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
import pytest
import torch
from folders import pairs_folder

from tlc_probe.jobs import CollectConfig, ImageSource, collect_checkpoint
from tlc_probe.jobs.reliance import reliance_checkpoint
from tlc_probe.models import build
from tlc_probe.store import save_checkpoint

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


@pytest.fixture(scope="module")
def user_store(tmp_path_factory):
    root = tmp_path_factory.mktemp("user")
    data = pairs_folder(root / "data", 2, 48, 96)
    torch.manual_seed(3)
    ck = save_checkpoint(build("nafnet", "tiny"), root / "mine.pt", task="deblur", train_size=32)
    images = ImageSource(data, train_data=data)
    cfg = CollectConfig(n_crops=8, crop_batch=8, positions=3, tile_overlap=4)
    collect_checkpoint(
        ck, root / "stats", images=images, config=cfg, progress=False, name="my-nafnet"
    )
    rel = reliance_checkpoint(ck, images=images, name="my-nafnet")
    rel.to_csv(root / "reliance.csv", index=False)
    return root


def _run(name: str, parameters: dict, where: Path):
    """Execute notebook ``name`` with ``parameters`` (papermill, in ``where``); the
    executed notebook."""
    out = where / f"{name}.ipynb"
    pm.execute_notebook(
        str(NOTEBOOKS / f"{name}.ipynb"),
        str(out),
        parameters=parameters,
        cwd=str(where),
        kernel_name="python3",
        progress_bar=False,
    )
    return nbformat.read(out, as_version=4)


def _outputs(nb) -> str:
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", ""))
            data = out.get("data", {})
            texts.append(data.get("text/plain", ""))
            texts.append(data.get("text/html", ""))
    return "\n".join(texts)


def _images(nb) -> int:
    return sum("image/png" in out.get("data", {}) for c in nb.cells for out in c.get("outputs", []))


@pytest.mark.slow
def test_notebook_02_draws_a_users_store(user_store, tmp_path):
    nb = _run("02_distribution_figures", {"stats_dir": str(user_store / "stats")}, tmp_path)
    text = _outputs(nb)
    assert "my-nafnet" in text and "hinet" not in text  # the user's model, not the default
    assert _images(nb) >= 2  # the Fig. A3 of its most shifted SE site and its depth profile
    assert not (tmp_path / "results").exists()  # nothing of the embedded default collected


@pytest.mark.slow
def test_notebook_03_tables_a_users_store_and_reliance(user_store, tmp_path):
    params = {
        "stats_dir": str(user_store / "stats"),
        "reliance_csv": str(user_store / "reliance.csv"),
    }
    nb = _run("03_shift_metrics", params, tmp_path)
    text = _outputs(nb)
    n_sites = (pd.read_csv(user_store / "reliance.csv")["site"] != "all").sum()
    assert "my-nafnet" in text and "hinet" not in text
    assert f"{n_sites} rows with reliance" in text  # every site joined (one stat: mean)
    assert _images(nb) >= 2  # the decomposition bars and the heatmap
