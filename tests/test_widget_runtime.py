"""The shared JS runtime: plotly and the views travel once per kernel and notebook, not per widget."""

from __future__ import annotations

import base64
import gzip
import json
import re

import numpy as np
import pytest
from ipywidgets.embed import dependency_state

from devinterp_viz.engine.results import LLCResult
from devinterp_viz.widgets import SamplerWidget
from devinterp_viz.widgets import _base
from devinterp_viz.widgets._base import DvzRuntime, bundle, bundle_is_built, script_json, shared_runtime

built = pytest.mark.skipif(not bundle_is_built(), reason="JS bundle not built (npm --prefix js run build)")

VIEW_MODULE_MAX_BYTES = 4 * 1024
PAGE_MAX_BYTES = int(1.2 * 1024 * 1024)  # a saved offline page (tests/test_widget_notebook.py: a saved notebook)


def finished_widget(seed: int = 0) -> SamplerWidget:
    rng = np.random.default_rng(seed)
    res = LLCResult.from_traces(1 + 0.05 * rng.random((4, 300)), 1.0, 10.0, config={"lr": 1e-3, "num_draws": 300})
    return SamplerWidget.from_result(res)


@built
def test_each_widget_carries_only_the_small_view_module():
    widget = finished_widget()
    assert len(widget._esm.encode()) <= VIEW_MODULE_MAX_BYTES
    assert "plotly" not in widget._esm.lower()
    assert widget._runtime._esm == bundle()[0] and "plotly" in widget._runtime._esm.lower()
    assert not getattr(widget, "_css", "")  # the runtime injects the stylesheet


@built
def test_widgets_share_one_runtime_referenced_in_their_state():
    first, second = finished_widget(0), finished_widget(1)
    assert first._runtime is second._runtime is shared_runtime()
    model_id = first._runtime.model_id
    assert first.get_state()["_runtime"] in (f"anywidget:{model_id}", f"IPY_MODEL_{model_id}")
    assert isinstance(first._runtime, DvzRuntime) and len(first._runtime.bundle_hash) == 16


@built
def test_saved_state_of_three_widgets_holds_the_runtime_once():
    """What a saved notebook stores for three widgets: the runtime once, plus each widget's own data."""
    widgets = [finished_widget(seed) for seed in range(3)]
    state = dependency_state([*widgets, shared_runtime()], drop_defaults=False)  # by model id
    runtimes = [s for s in state.values() if s["model_name"] == "AnyModel" and s["state"].get("bundle_hash")]
    assert len(runtimes) == 1
    runtime_bytes = len(json.dumps(runtimes[0]))
    per_widget = [len(json.dumps(state[w.model_id])) for w in widgets]
    assert max(per_widget) < 100_000 < runtime_bytes, per_widget


@built
def test_a_closed_runtime_is_replaced_for_new_widgets():
    old = finished_widget()._runtime
    old.close()
    fresh = finished_widget()._runtime
    assert fresh is not old and fresh.comm is not None


def test_without_the_built_js_widgets_say_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setattr(_base, "STATIC", tmp_path)
    bundle.cache_clear()
    try:
        monkeypatch.setattr(SamplerWidget, "_esm", _base._MISSING_BUNDLE_ESM, raising=False)
        widget = finished_widget()
        assert widget._runtime is None
        assert "npm --prefix js ci" in widget._esm
        with pytest.raises(RuntimeError, match="npm --prefix js"):
            widget.save_html(tmp_path / "w.html")
    finally:
        bundle.cache_clear()


@built
def test_save_html_inlines_the_runtime_once(tmp_path):
    page = finished_widget().save_html(tmp_path / "w.html").read_text()
    runtime, view = bundle()
    assert page.count(script_json(runtime)[1:200]) == 1
    assert len(page) < len(runtime) * 1.1 + 200_000


@built
def test_a_saved_page_stays_under_its_budget_with_every_view_inside(tmp_path):
    page = finished_widget().save_html(tmp_path / "w.html")
    assert page.stat().st_size <= PAGE_MAX_BYTES, f"a saved page is {page.stat().st_size / 2**20:.2f} MB"
    # the runtime travels gzipped in the page; unpacked it holds plotly and every view
    packed = re.search(r'"(H4sI[A-Za-z0-9+/=]+)"', bundle()[0])
    assert packed, "the runtime is not packed (npm --prefix js run build)"
    runtime = gzip.decompress(base64.b64decode(packed[1])).decode("utf-8")
    assert len(runtime) > 2 * page.stat().st_size
    assert "plotly" in runtime and all(view in runtime for view in ("SamplerWidget", "DevelopmentDashboard",
                                                                     "RefinedLLCWidget", "HeadClusterWidget"))
