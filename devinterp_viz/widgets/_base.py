"""The base class of every devinterp_viz widget, the shared JS runtime they render with, HTML export.

The browser side is two modules built by ``js/build.mjs``: ``static/index.js``, the runtime (every
view, plotly.js and the stylesheet: 1.2 MB, travelling gzipped and base64-encoded as 0.55 MB that
the browser unpacks itself, offline), and ``static/view.js`` (~1 KB). anywidget ships a
widget's ``_esm`` with every instance and a saved notebook stores it once per widget, so the
runtime travels in one hidden :class:`DvzRuntime` widget per kernel; each widget's ``_esm`` is the
small view module, which finds the runtime through the widget reference in its ``_runtime`` trait
(anywidget's ``host.getWidget``) and renders with it. A notebook with many widgets holds plotly once.
"""

from __future__ import annotations

import difflib
import hashlib
import html
import json
import threading
from functools import cache
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets
import traitlets

from devinterp_viz.widgets._transport import embed_state

STATIC = Path(__file__).parent / "static"
BUILD_HINT = "npm --prefix js ci && npm --prefix js run build"

_MISSING_BUNDLE_ESM = """
export default { render({ model, el }) {
  el.setAttribute("data-dvz-widget", model.get("_view"));
  el.textContent = "devinterp_viz: the widget bundle is not built. From the repository root run: %s";
} };
""" % BUILD_HINT


@cache
def bundle() -> tuple[str, str]:
    """The built JS: the shared runtime (``static/index.js``) and the per-widget view module
    (``static/view.js``).

    When the JS was not built (a source checkout without ``npm run build``) the view module is a
    stub that says how to build it and the runtime is empty, so Python-side use and tests work.
    """
    runtime, view = STATIC / "index.js", STATIC / "view.js"
    if not (runtime.is_file() and view.is_file()):
        return "", _MISSING_BUNDLE_ESM
    return runtime.read_text(encoding="utf-8"), view.read_text(encoding="utf-8")


def bundle_is_built() -> bool:
    return (STATIC / "index.js").is_file() and (STATIC / "view.js").is_file()


@cache
def _digest(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


class DvzRuntime(anywidget.AnyWidget):
    """The hidden widget that carries the JS runtime (views, plotly, CSS) once per kernel.

    Never displayed. Every :class:`DvzWidget` references the kernel's one instance
    (:func:`shared_runtime`) in its ``_runtime`` trait; the front end imports the runtime once per
    page, and a saved notebook's widget state holds it once however many widgets it shows.

    Traits
    ------
    bundle_hash : str
        First 16 hex digits of the runtime's SHA-256 (the page caches the runtime by it).
    """

    bundle_hash = traitlets.Unicode("").tag(sync=True)

    def __init__(self, **kwargs: Any) -> None:
        type(self)._esm = runtime = bundle()[0]  # always the current build (after bundle.cache_clear())
        super().__init__(bundle_hash=_digest(runtime), **kwargs)


def _runtime_reference() -> traitlets.TraitType:
    """A synced reference to the runtime widget: ``"anywidget:<id>"``, which anywidget >= 0.11
    resolves to the runtime's exports (``host.getWidget``); ipywidgets' ``"IPY_MODEL_<id>"`` before."""
    if hasattr(anywidget, "WidgetTrait"):
        return anywidget.WidgetTrait().tag(sync=True)
    return traitlets.Instance(DvzRuntime, allow_none=True).tag(sync=True, **ipywidgets.widget_serialization)


_shared: DvzRuntime | None = None
_shared_lock = threading.Lock()


def shared_runtime() -> DvzRuntime:
    """This kernel's :class:`DvzRuntime`, created on first use (again if it was closed)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.comm is None or _shared.bundle_hash != _digest(bundle()[0]):
            _shared = DvzRuntime()
        return _shared


class DvzWidget(anywidget.AnyWidget):
    """Base of all devinterp_viz widgets.

    Subclasses set ``_view`` (the name of the JS view, also written to the root element's
    ``data-dvz-widget`` attribute) and declare their synced traits. Keyword arguments that are
    not public traits of the widget raise ``TypeError`` naming the closest valid ones.

    Traits
    ------
    _view : str
        Which view of the runtime renders this widget (``js/src/views/``).
    _runtime : DvzRuntime or None
        The shared runtime (synced as a widget reference); None when the JS is not built.
    """

    _view = traitlets.Unicode("").tag(sync=True)
    _runtime = _runtime_reference()

    def __init__(self, **kwargs: Any) -> None:
        self._reject_unknown(kwargs)
        cls = type(self)
        if "_esm" not in cls.__dict__:
            cls._esm = bundle()[1]  # the ~1 KB view module; the runtime travels once, in DvzRuntime
        runtime = shared_runtime() if bundle_is_built() else None
        super().__init__(_runtime=runtime, **kwargs)

    #: Synced traits only the widget writes (results, status); not accepted as keyword arguments.
    _read_only: tuple[str, ...] = ()
    #: Keyword arguments a subclass takes besides its traits (listed in the error message).
    _extra_kwargs: tuple[str, ...] = ()

    @classmethod
    def _public_traits(cls) -> list[str]:
        skip = set(cls._read_only) | {"tabbable", "tooltip"}
        return sorted(n for n in cls.class_trait_names(sync=True) if not n.startswith("_") and n not in skip)

    def _reject_unknown(self, kwargs: dict[str, Any]) -> None:
        valid = self._public_traits()
        for key in kwargs:
            if key not in valid:
                if key in self._read_only:
                    raise TypeError(f"{type(self).__name__}: {key!r} is read-only (the widget sets it)")
                every = sorted(set(valid) | set(self._extra_kwargs))
                close = difflib.get_close_matches(key, every, n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise TypeError(
                    f"{type(self).__name__} got an unexpected keyword argument {key!r}.{hint} "
                    f"Valid: {', '.join(every)}."
                )

    # ------------------------------------------------------------------ export
    def save_html(self, path: str | Path, title: str | None = None) -> Path:
        """Write a standalone HTML page showing this widget as it is now; it works offline.

        The page inlines the JS runtime (once), the view module and the widget's state (arrays as
        base64 float32 buffers). It is a snapshot: controls that need the kernel (Run, Stop) are
        disabled, while everything answered from data already sent (hovering, zooming, picking a
        calibration cell) keeps working.
        """
        if not bundle_is_built():
            raise RuntimeError(f"save_html needs the built JS bundle: run {BUILD_HINT}")
        runtime, view = bundle()
        state = embed_state(self)
        state["_static"] = True
        name = title or type(self).__name__
        page = _PAGE.format(
            title=html.escape(name),
            state=script_json(state),
            runtime_json=script_json(runtime),
            view_json=script_json(view),
        )
        path = Path(path)
        path.write_text(page, encoding="utf-8")
        return path


_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(value: Any) -> str:
    """JSON of ``value`` safe to inline in a ``<script>`` element (and as a JavaScript literal).

    Inside a script element the HTML parser ends the element at ``</script``, and ``<!--`` then
    ``<script`` switch it to a state where ``</script>`` no longer ends it: a head called
    ``<!--<script>`` would swallow the rest of the page. Every ``<``, ``>`` and ``&`` is written
    as its JSON escape (``\\u003c`` ...), as are U+2028 and U+2029 (line ends to older
    JavaScript); JSON has them only inside strings, where the escapes decode to the same text.
    """
    text = json.dumps(value)
    for char, escape in _SCRIPT_UNSAFE.items():
        text = text.replace(char, escape)
    return text


# The page imports the runtime and the view module from Blob URLs (exactly as anywidget does) and
# renders through the same path as in JupyterLab: the view module asks a `host` for the runtime
# widget's exports. The model is static: get/on/off/set work locally, send() and save_changes()
# do nothing.
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
:root {{ --jp-layout-color0: #fff; --jp-layout-color1: #fff; --jp-layout-color2: #eee;
  --jp-ui-font-color0: rgba(0,0,0,1); --jp-ui-font-color1: rgba(0,0,0,.87);
  --jp-ui-font-color2: rgba(0,0,0,.54); --jp-border-color1: #bdbdbd; --jp-border-color2: #e0e0e0;
  --jp-brand-color1: #1976d2; --jp-error-color1: #d32f2f; --jp-warn-color1: #f57c00;
  --jp-success-color1: #388e3c; --jp-ui-font-family: system-ui, sans-serif; --jp-ui-font-size1: 13px;
  --jp-code-font-family: monospace; }}
body {{ margin: 16px; background: var(--jp-layout-color0); font-family: var(--jp-ui-font-family); }}
</style></head>
<body><div id="dvz-root"></div>
<script type="module">
const state = {state};
const sources = {{ runtime: {runtime_json}, view: {view_json} }};
async function load(source) {{
  const url = URL.createObjectURL(new Blob([source], {{ type: "text/javascript" }}));
  try {{ const mod = await import(url); return typeof mod.default === "function" ? await mod.default() : mod.default; }}
  finally {{ URL.revokeObjectURL(url); }}
}}
const listeners = new Map();
const model = {{
  get: (k) => state[k],
  set: (k, v) => {{ state[k] = v; (listeners.get("change:" + k) || []).forEach((f) => f()); }},
  save_changes: () => {{}},
  send: () => {{}},
  on: (e, f) => {{ if (!listeners.has(e)) listeners.set(e, []); listeners.get(e).push(f); }},
  off: (e, f) => {{ if (listeners.has(e)) listeners.set(e, listeners.get(e).filter((g) => g !== f)); }},
}};
const runtime = await load(sources.runtime);
const exports = await runtime.initialize({{ model: {{ get: () => undefined, on() {{}}, off() {{}} }} }});
const host = {{ getWidget: async (ref) => ({{ exports }}) }};
const view = await load(sources.view);
await view.render({{ model, el: document.getElementById("dvz-root"), host }});
</script></body></html>
"""
