"""JupyterLab itself, in a real browser: start ``jupyter lab`` from this environment, open
notebook 02 in headless Chromium (Debian's ``chromium``, driven by Playwright's Python
client; Playwright never downloads a browser here), run all cells, and check that no
cell failed, that figures and the explorer's controls are visible, and that choosing
another site in the explorer changes its figure.

The notebook runs in place (in ``notebooks/``, writing its statistics under
``notebooks/results/``, as nbval's run of it does) with autosave off: the file is never
written, which the test checks. The server is stopped in every case; kernels it left
behind are killed.

The browser: ``TLC_PROBE_CHROMIUM`` or ``chromium`` on PATH (``apt-get install -y
chromium`` as root; ``.ci/run`` does it). Without it the test fails and says so.
``TLC_PROBE_SCREENSHOTS=<folder>`` also writes the explorer's screenshot there
(``docs/explorer.png`` is made that way).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "02_distribution_figures.ipynb"
#: Chromium as the environment probe starts it: no sandbox (root), no GPU, and none of
#: the background connections a closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
]
INSTALL = (
    "run make browser (scripts/ensure_browser.sh), install Debian's chromium (as root: "
    "apt-get install -y chromium) or set TLC_PROBE_CHROMIUM to a Chromium binary"
)

pytestmark = pytest.mark.slow


def _chromium() -> str:
    """The browser: ``TLC_PROBE_CHROMIUM``, Debian's ``chromium`` (or ``chromium-browser``)
    on PATH, or the one Playwright downloaded (``make test`` gets one of them:
    scripts/ensure_browser.sh)."""
    path = (
        os.environ.get("TLC_PROBE_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )
    if not path:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            managed = pw.chromium.executable_path
        path = managed if os.path.exists(managed) else None
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"no Chromium for the browser test: {INSTALL}", pytrace=False)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url: str, token: str, method: str = "GET") -> int:
    req = urllib.request.Request(url, method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.status


def _kill_kernels(runtime: Path) -> None:
    """Kill processes whose command line names a connection file under ``runtime``."""
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if str(runtime).encode() in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)


@contextlib.contextmanager
def jupyter_lab(root_dir: Path, home: Path):
    """A JupyterLab server of this environment on 127.0.0.1 (a free port, a random
    token), with its own config, runtime and settings folders under ``home``: autosave
    off and every cell rendered (no windowing). Yields its base URL and token; stops it
    (and any kernel it left) however the block ends."""
    settings = home / "settings"
    for plugin, values in {
        "docmanager-extension/plugin": {"autosave": False},
        "notebook-extension/tracker": {"windowingMode": "none"},
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        f = settings / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values))
    runtime = home / "runtime"
    env = os.environ | {
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),  # no user kernelspec takes over
        "JUPYTER_RUNTIME_DIR": str(runtime),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "IPYTHONDIR": str(home / "ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    port, token = _free_port(), secrets.token_hex(16)
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--LabApp.expose_app_in_browser=True",
    ]
    if os.geteuid() == 0:  # CI machines run as root
        cmd.append("--allow-root")
    with open(home / "server.log", "wb") as log:  # the child keeps its own descriptor
        server = subprocess.Popen(
            cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                output = (home / "server.log").read_text()
                raise RuntimeError(f"jupyter lab exited ({server.returncode}):\n{output}")
            with contextlib.suppress(OSError):
                if _request(f"{base}/api/status", token) == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"jupyter lab did not answer on {base} within 90 s")
            time.sleep(0.5)
        yield base, token
    finally:
        with contextlib.suppress(OSError):
            _request(f"{base}/api/shutdown", token, method="POST")  # kernels shut down too
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
        _kill_kernels(runtime)


# The notebook's model, read through the application object (exposed by the server flag
# --LabApp.expose_app_in_browser): prompts while running, outputs of type "error".
_CELLS_JS = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = [];
  for (const cell of panel.content.widgets) {
    if (cell.model.type !== 'code') continue;
    const outputs = [];
    for (let i = 0; i < cell.model.outputs.length; i++) {
      const o = cell.model.outputs.get(i).toJSON();
      outputs.push({type: o.output_type, ename: o.ename || '', evalue: o.evalue || ''});
    }
    cells.push({count: cell.model.executionCount, prompt: cell.promptNode
      ? cell.promptNode.textContent : '', outputs});
  }
  return {status: panel.sessionContext.session?.kernel?.status || 'none', cells};
}"""


def _wait_for_run(page, timeout_s: float) -> list[dict]:
    """Poll until every queued cell has run (no '[*]' prompt, kernel idle, twice in a
    row); returns the code cells' states."""
    deadline, calm = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        state = page.evaluate(_CELLS_JS)
        running = any("*" in c["prompt"] for c in state["cells"])
        calm = calm + 1 if state["status"] == "idle" and not running else 0
        if calm >= 2:
            return state["cells"]
        page.wait_for_timeout(1000)
    raise TimeoutError(f"the notebook did not finish within {timeout_s:.0f} s: {state}")


def test_notebook_02_and_the_explorer_in_jupyterlab(tmp_path):
    chromium = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright's Python client is missing: pip install -e '.[test]'", False)
    notebook = ROOT / "notebooks" / NOTEBOOK
    original = notebook.read_bytes()
    with (
        jupyter_lab(ROOT / "notebooks", tmp_path / "jupyter") as (base, token),
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1100})
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}", timeout=60_000)
            page.wait_for_function(
                "() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                " && window.jupyterapp.shell.currentWidget.sessionContext?.session?.kernel"
                " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                ".status === 'idle'",
                timeout=90_000,
            )
            # Run > Run All Cells, as a user does
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-InputPrompt')]"
                ".some(p => p.textContent.includes('*') || /\\d/.test(p.textContent))",
                timeout=30_000,
            )
            cells = _wait_for_run(page, timeout_s=420)
            errors = [o for c in cells for o in c["outputs"] if o["type"] == "error"]
            assert not errors, f"cells failed: {errors}"
            assert all(c["count"] is not None for c in cells), f"cells not run: {cells}"

            # static figures rendered as images
            figures = page.locator(".jp-RenderedImage img")
            assert figures.count() >= 4
            figures.first.scroll_into_view_if_needed()
            assert figures.first.is_visible()
            # the explorer: its controls and its figure
            explorer = page.locator(".tlc-probe-explorer")
            explorer.scroll_into_view_if_needed()
            assert explorer.is_visible()
            for name in ("model", "site", "stat", "channel"):
                assert page.locator(f".tlc-probe-{name} select").is_visible(), name
            figure = page.locator("img.tlc-probe-figure")
            assert figure.is_visible()
            assert page.evaluate("(img) => img.naturalWidth", figure.element_handle()) > 100
            before_src, before_png = figure.get_attribute("src"), figure.screenshot()
            explorer.screenshot(path=str(tmp_path / "explorer-before.png"))

            site = page.locator(".tlc-probe-site select")
            options = site.locator("option").all_text_contents()
            assert len(options) >= 2, options
            site.select_option(index=len(options) - 1)
            page.wait_for_function(
                "([img, src]) => img.getAttribute('src') !== src && img.complete"
                " && img.naturalWidth > 0",
                arg=[figure.element_handle(), before_src],
                timeout=60_000,
            )
            page.wait_for_timeout(500)
            assert figure.screenshot() != before_png
            shot = tmp_path / "explorer.png"
            explorer.screenshot(path=str(shot))
            if folder := os.environ.get("TLC_PROBE_SCREENSHOTS"):
                Path(folder).mkdir(parents=True, exist_ok=True)
                shutil.copy(shot, Path(folder) / "explorer.png")
        finally:
            browser.close()
    assert notebook.read_bytes() == original, "JupyterLab wrote the notebook"
