"""The documentation: a README that is a landing page, and a MkDocs site that builds in
strict mode (a broken link, a missing page or a docstring that does not parse fails it),
documents the public API from the docstrings and renders every notebook."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_a_landing_page_with_the_paper_code_citation_and_docs():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert "arxiv.org/abs/2112.04491" in text and "github.com/megvii-research/TLC" in text
    assert "@inproceedings{chu2022tlc" in text and (ROOT / "CITATION.cff").is_file()
    assert "2112.04491" in (ROOT / "CITATION.cff").read_text()
    for target in re.findall(r"\]\((docs/[^)#]+|CHANGELOG\.md)\)", text):
        assert (ROOT / target).exists(), target  # every link into the repository resolves


def test_the_site_builds_strictly_with_the_api_and_every_notebook(tmp_path):
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    api = (site / "api" / "index.html").read_text()
    for name in ("tlc_probe.tlc.convert.convert", "tlc_probe.Probe", "tlc_probe.shift_table"):
        assert f'id="{name}"' in api, name
    section = api.split('id="tlc_probe.tlc.convert.convert"', 1)[1][:20000]
    assert "Return the TLC version of" in section  # the function's docstring, not the module's
    assert "fast_imp" in section and "mode" in section
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        page = site / "notebooks" / nb.stem / "index.html"
        assert page.is_file(), f"{nb.name} is not rendered in the site"
        assert "jp-Notebook" in page.read_text() or "jupyter-wrapper" in page.read_text()


def test_every_image_the_docs_embed_is_in_the_repository():
    # a figure under an ignored folder (results/ is ignored everywhere) would exist here
    # and be missing from every clone
    found = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        for target in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", page.read_text()):
            path = (page.parent / target).resolve()
            assert path.is_file(), f"{page.name}: {target} does not exist"
            found.append(path)
    ignored = subprocess.run(
        ["git", "check-ignore", *map(str, found)], cwd=ROOT, capture_output=True, text=True
    )
    assert found and ignored.stdout.strip() == "", f"git ignores: {ignored.stdout}"
