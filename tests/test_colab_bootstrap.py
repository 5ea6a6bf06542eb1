"""The Colab check: every chapter runs in a fresh environment where only its bootstrap cell installs flowbook.

``scripts/test_colab_bootstrap.sh`` builds a new virtual environment with Colab's preinstalled
packages (no flowbook), a wheel of this repository, and executes every ``book/*.ipynb`` from a
temporary copy outside the repository with ``FLOWBOOK_BOOTSTRAP=1`` and ``FLOWBOOK_PIP_SOURCE``
set to the wheel. It takes several minutes (about 100 s to install the environment, then every
chapter); set ``FLOWBOOK_SKIP_COLAB_CHECK=1`` to skip the slow test locally.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "test_colab_bootstrap.sh"


def _run(*notebooks, timeout):
    return subprocess.run(["bash", str(SCRIPT), *map(str, notebooks)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHON": sys.executable})


def test_script_rejects_a_notebook_without_the_bootstrap_cell(tmp_path):
    """The check can fail: a chapter whose first cell is not the bootstrap is refused (before any install)."""
    nb = json.loads((REPO / "book" / "01_change_of_variables.ipynb").read_text())
    nb["cells"] = nb["cells"][1:]
    bad = tmp_path / "no_bootstrap.ipynb"
    bad.write_text(json.dumps(nb))
    result = _run(bad, timeout=60)
    assert result.returncode != 0
    assert "not the Colab bootstrap cell" in result.stderr


@pytest.mark.skipif(os.environ.get("FLOWBOOK_SKIP_COLAB_CHECK") == "1", reason="FLOWBOOK_SKIP_COLAB_CHECK=1")
def test_every_notebook_runs_through_its_bootstrap_cell():
    result = _run(timeout=3600)
    report = result.stdout[-6000:] + "\n" + result.stderr[-6000:]
    assert result.returncode == 0, report
    assert "PASS: all" in result.stdout, report
    print(result.stdout[-2000:])
