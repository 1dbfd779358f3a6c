"""The main job runs headless: `devinterp-viz demo --quick --no-lab` writes an offline report, and a rerun reuses its work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import devinterp_viz as dvz

ROOT = Path(__file__).resolve().parents[1]


def test_quick_demo_writes_an_offline_report_and_reuses_its_store(tmp_path):
    out = tmp_path / "demo"
    env = {"CI": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DVZ_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "devinterp_viz.cli", "demo", "--quick", "--no-lab", "--out", str(out)]
    first = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    for line in ("1. known answer", "2. toy model of superposition", "3. toy transformer", "per-head refined LLC"):
        assert line in first.stdout
    report = out / "report"
    pages = ["index.html", "tms_dashboard.html", "tms_sampler.html", "transformer_dashboard.html", "heads.html"]
    for page in pages:
        assert (report / page).stat().st_size > 1000
    index = (report / "index.html").read_text()
    assert all(f'href="{page}"' in index for page in pages[1:])
    assert "https://" not in (report / "tms_dashboard.html").read_text()[:5000]  # no CDN: the bundle is inlined
    trained = sorted(path.name.split("-")[0] for path in (tmp_path / "cache").iterdir())
    assert trained == ["tms", "transformer"]  # in the zoo's cache, where the notebooks find them: trained once for both
    stored = len(dvz.ResultStore(out / "store"))
    assert stored > 20
    again = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert again.returncode == 0 and len(dvz.ResultStore(out / "store")) == stored  # nothing recomputed
