"""notebooks/sampler_tuning.ipynb runs headless (nbclient) and stays small once executed: its three
widgets share one stored copy of the JS runtime."""

from __future__ import annotations

from pathlib import Path

import nbformat


NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "sampler_tuning.ipynb"
MAX_BYTES = 1024 * 1024  # a saved notebook: its widgets and one packed runtime


def test_sampler_tuning_notebook_runs_and_tells_the_story(tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    out = tmp_path / "sampler_tuning.executed.ipynb"
    nbformat.write(nb, out)
    assert out.stat().st_size <= MAX_BYTES, f"executed notebook is {out.stat().st_size / 1e6:.2f} MB"

    text = {i: "".join(o.get("text", "") for o in c.get("outputs", [])) for i, c in enumerate(nb.cells)}
    joined = "\n".join(text.values())
    assert "diverged" in joined  # the bad setting
    assert "unhealthy" in joined and "next step: add burn-in" in joined  # the timid one is caught, with what to do
    assert "recommended:" in joined and "verdict: healthy" in joined
    widget_state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    views = [s for s in widget_state.values() if s["state"].get("_view") == "SamplerWidget"]
    assert len(views) == 3  # the live widget, and the bad and the timid run reopened from their results
    # plotly and the views are stored once, in the shared runtime; each widget carries a ~1 KB module
    big = [s for s in widget_state.values() if len(s["state"].get("_esm", "")) > 100_000]
    assert len(big) == 1 and all(len(v["state"]["_esm"]) < 4096 for v in views)
