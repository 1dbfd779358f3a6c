"""A JupyterLab server on loopback for browser tests and benchmarks, plus Debian's chromium settings."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

CHROMIUM = Path(os.environ.get("DVZ_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"  # screenshots (gitignored)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lab:
    """A running JupyterLab: its URL, token, notebook folder and runtime folder (kernels)."""

    def __init__(self, root: Path, home: Path):
        self.root, self.home = root, home
        self.port = _free_port()
        self.token = uuid.uuid4().hex
        self.runtime_dir = home / "runtime"
        self.settings_dir = home / "user-settings"
        self.proc: subprocess.Popen | None = None
        self.log = home / "lab.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> None:
        # quiet settings: no news / update prompts that could cover the notebook
        notification = self.settings_dir / "@jupyterlab" / "apputils-extension"
        notification.mkdir(parents=True, exist_ok=True)
        (notification / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        tracker = self.settings_dir / "@jupyterlab" / "notebook-extension"
        tracker.mkdir(parents=True, exist_ok=True)
        (tracker / "tracker.jupyterlab-settings").write_text(json.dumps({"autoStartDefaultKernel": True}))
        env = {
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(self.runtime_dir),
            "JUPYTER_CONFIG_DIR": str(self.home / "config"),
            "JUPYTERLAB_SETTINGS_DIR": str(self.settings_dir),
            "JUPYTERLAB_WORKSPACES_DIR": str(self.home / "workspaces"),
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1",
        }
        cmd = [
            sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
            f"--port={self.port}", f"--ServerApp.token={self.token}", f"--ServerApp.root_dir={self.root}",
            "--ServerApp.port_retries=0", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
        self.proc = subprocess.Popen(cmd, env=env, stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited early:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/status?token={self.token}", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"JupyterLab did not start in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        try:  # shut down kernels and the server cleanly, then make sure
            req = urllib.request.Request(f"{self.url}/api/shutdown?token={self.token}", method="POST")
            urllib.request.urlopen(req, timeout=5)
            self.proc.wait(timeout=15)
        except Exception:  # noqa: BLE001
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def api(self, path: str):
        with urllib.request.urlopen(f"{self.url}{path}?token={self.token}", timeout=10) as response:
            return json.loads(response.read())

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"

    def kernel_client(self, notebook: str):
        """A client of the kernel behind ``notebook`` (to read the Python side of a widget)."""
        from jupyter_client import BlockingKernelClient

        sessions = [s for s in self.api("/api/sessions") if s["path"].endswith(notebook)]
        assert sessions, f"no kernel session for {notebook}"
        connection = self.runtime_dir / f"kernel-{sessions[0]['kernel']['id']}.json"
        client = BlockingKernelClient(connection_file=str(connection))
        client.load_connection_file()
        client.start_channels()
        client.wait_for_ready(timeout=30)
        return client


def kernel_eval(client, expression: str, timeout: float = 30):
    """Evaluate ``expression`` in the kernel and return its repr as a Python value (via JSON)."""
    outputs = []

    def hook(msg):
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            outputs.append(msg["content"]["text"])
        elif msg["msg_type"] == "error":
            outputs.append("ERROR " + "\n".join(msg["content"]["traceback"]))

    client.execute_interactive(f"import json as _j; print(_j.dumps({expression}))", output_hook=hook, timeout=timeout)
    text = "".join(outputs)
    assert not text.startswith("ERROR"), text
    return json.loads(text)


# ----------------------------------------------------------------------------- notebook and page helpers
def write_notebook(lab: Lab, name: str, source: str | list[str]) -> str:
    """A notebook of one code cell per source string in the lab's root; returns its name."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(cell.strip()) for cell in ([source] if isinstance(source, str) else source)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, lab.root / name)
    return name


def start_run_all(page, lab: Lab, name: str) -> None:
    """Open the notebook in JupyterLab, wait for an idle kernel, and run all cells."""
    page.goto(lab.notebook_url(name))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    page.wait_for_function(
        "[...document.querySelectorAll('.jp-StatusBar-TextItem')].some((e) => /Idle/.test(e.textContent))", timeout=90_000
    )
    page.click(".lm-MenuBar-itemLabel:text-is('Run')")
    page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")


def open_and_run(page, lab: Lab, name: str, root: str) -> None:
    """:func:`start_run_all`, then wait until the widget ``root`` says it is ready."""
    start_run_all(page, lab, name)
    page.wait_for_selector(f"{root}[data-dvz-ready='1']", timeout=120_000)


def q(selector: str) -> str:
    """JS expression for the element matching ``selector``."""
    return f"document.querySelector({json.dumps(selector)})"


def switch_theme(page, name: str) -> None:
    """Pick a JupyterLab theme from the Settings menu ("JupyterLab Light", "JupyterLab Dark")."""
    page.click(".lm-MenuBar-itemLabel:text-is('Settings')")
    page.hover(".lm-Menu-itemLabel:text-is('Theme')")
    page.click(f".lm-Menu-itemLabel:text-is('{name}')")


def to_dark_theme(page, root: str) -> None:
    """Switch JupyterLab to its dark theme and wait until the widget at ``root`` has followed it."""
    switch_theme(page, "JupyterLab Dark")
    page.wait_for_selector(f"{root}[data-dvz-theme='dark']", timeout=30_000)
    page.wait_for_timeout(500)  # the widget redraws its figures a moment after the attribute flips


def wait_python(client, expression: str, predicate, timeout: float = 20.0):
    """Poll ``expression`` in the kernel until ``predicate`` holds (or time runs out); its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = kernel_eval(client, expression)
        if predicate(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def plot_background_luminance(selector: str) -> str:
    """JS expression: relative luminance (0 black .. 1 white) of a plotly figure's paper colour."""
    return f"""(() => {{
        const probe = document.createElement("span");
        probe.style.color = {q(selector)}._fullLayout.paper_bgcolor;
        document.body.appendChild(probe);
        const [r, g, b] = getComputedStyle(probe).color.match(/[\\d.]+/g).map(Number);
        probe.remove();
        return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
    }})()"""
