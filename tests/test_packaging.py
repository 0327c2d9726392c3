"""The set-up contract: one dependency list, two README commands, CI runs the test one."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"pytorch": "torch", "python-duckdb": "duckdb"}
CONDA_ONLY = {"python", "pip", "cpuonly"}


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pyproject_requirements() -> dict[str, str]:
    proj = _pyproject()["project"]
    reqs = list(proj["dependencies"])
    for extra in proj["optional-dependencies"].values():
        reqs += extra
    return {Requirement(r).name.lower(): str(Requirement(r).specifier) for r in reqs}


def _environment_yml() -> tuple[dict[str, str], list[str]]:
    conda, pip, in_pip = {}, [], False
    text = (ROOT / "environment.yml").read_text()
    for line in text.split("\ndependencies:\n", 1)[1].splitlines():
        if re.match(r"^\s*- pip:\s*$", line):
            in_pip = True
            continue
        m = re.match(r"^(\s*)- (.+?)\s*$", line)
        if not m:
            continue
        if in_pip and len(m.group(1)) > 2:
            pip.append(m.group(2).replace('"', "").replace("'", ""))
            continue
        in_pip = False
        spec = m.group(2)
        name = re.split(r"[<>=!~ ]", spec, maxsplit=1)[0].lower()
        if name not in CONDA_ONLY:
            conda[CONDA_TO_PYPI.get(name, name)] = str(Requirement(spec).specifier)
    return conda, pip


def test_environment_yml_matches_pyproject():
    conda, pip = _environment_yml()
    assert conda == _pyproject_requirements()
    extras = set(_pyproject()["project"]["optional-dependencies"])
    assert len(pip) == 1 and pip[0].startswith("-e .[")  # installs the package itself ...
    assert set(pip[0][len("-e .[") : -1].split(",")) == extras  # ... with every extra


def test_python_floor_agrees():
    assert _pyproject()["project"]["requires-python"] == ">=3.11"
    assert "  - python>=3.11" in (ROOT / "environment.yml").read_text()


def _setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set-up: two commands", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.strip()]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    cmds = _setup_commands()
    assert cmds == ["make reproduce", "make test"]
    ci = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert cmds[1] in ci


def test_makefile_pins_the_cpu_torch_and_targets_exist():
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^TORCH\s*\?=\s*torch==2\.13\.0\s*$", make, re.M)
    for target in ("reproduce", "test"):
        assert re.search(rf"^{target}:", make, re.M)
    deps = _pyproject()["project"]["dependencies"]
    assert not any(Requirement(d).name == "torch" and "==" in d for d in deps)


@pytest.mark.slow
def test_console_script_help():
    for args in ([], ["reproduce"], ["train"]):
        out = subprocess.run(
            [sys.executable, "-m", "tlc_probe.cli", *args, "--help"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "usage: tlc-probe" in out
    scripts = _pyproject()["project"]["scripts"]
    assert scripts == {"tlc-probe": "tlc_probe.cli:main"}


def _python(code: str) -> str:
    """Run ``code`` in a fresh interpreter; its stdout, stripped (it must exit 0)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_the_package_and_the_help_import_no_torch():
    # the root facade imports names when first used; --help needs no model machinery
    code = (
        "import sys, contextlib, io\n"
        "import tlc_probe\n"
        "from tlc_probe.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['--help']) == 0 and main(['collect', '--help']) == 0\n"
        "print(sorted(m for m in ('torch', 'pandas', 'matplotlib') if m in sys.modules))\n"
        "assert callable(tlc_probe.convert) and 'torch' in sys.modules\n"
        "missing = [n for n in tlc_probe.__all__ if not hasattr(tlc_probe, n)]\n"
        "assert not missing, missing\n"
    )
    assert _python(code) == "[]"


def test_the_root_names_and_subpackages_resolve_in_any_order():
    code = (
        "import tlc_probe\n"
        "assert tlc_probe.jobs.ImageSource is tlc_probe.ImageSource\n"  # subpackage attribute
        "tlc_probe.StatsSource\n"
        "from tlc_probe.explore import explore\n"
        "assert callable(tlc_probe.explore.explore) and callable(explore)\n"
        "assert 'explore' not in tlc_probe.__all__\n"
    )
    _python(code)
