"""The wheel is a real package: built from the sources alone (its build runs npm for the widget bundle) and working once installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def source_tree(into: Path) -> Path:
    """The files git would commit (tracked, and new ones not ignored): no built bundle, no node_modules."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.split("\n")
    for name in filter(None, listed):
        if (ROOT / name).is_file() and not name.startswith(("tests/", "bench/", "notebooks/")):
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, into / name)
    return into


@pytest.mark.skipif(shutil.which("npm") is None or shutil.which("git") is None, reason="building the wheel needs git and npm")
def test_the_wheel_carries_the_widget_bundle_and_installed_widgets_render(tmp_path):
    src = source_tree(tmp_path / "src")
    assert not (src / "devinterp_viz" / "widgets" / "static").exists()
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-w", str(tmp_path / "dist"), "-q"],
                           capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("devinterp_viz-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"devinterp_viz/widgets/static/index.js", "devinterp_viz/widgets/static/view.js"} <= set(names)
    assert not any(name.startswith(("js/", "tests/")) for name in names)

    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(target), str(wheel), "-q"],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-3000:]
    script = (
        "import devinterp_viz as dvz, sys; from pathlib import Path\n"
        f"assert Path(dvz.__file__).is_relative_to({str(target)!r}), dvz.__file__\n"
        "page = dvz.SamplerWidget().save_html('page.html')\n"
        "text = page.read_text(); assert 'devinterp_viz widget runtime' in text and len(text) > 500_000\n"
        "print('saved', len(text))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}  # the installed wheel, ahead of the source checkout
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "saved" in run.stdout, run.stderr[-3000:]
