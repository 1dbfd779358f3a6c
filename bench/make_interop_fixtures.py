"""Regenerate the devinterp fixtures of tests/test_interop.py (tests/data/devinterp*_results.json).

Usage (from the repository root, with the project's venv)::

    .venv/bin/python bench/make_interop_fixtures.py

It creates, if missing, the throwaway venvs bench/.envs/devinterp-1.3.2 and
bench/.envs/devinterp-2.0.1 (torch==2.13.0 first, then devinterp; see bench/llc_speed.py),
and runs ``bench/peers/devinterp1_peer.py fixture`` and ``bench/peers/devinterp2_peer.py
fixture`` in them. Each writes real outputs of tiny runs, verbatim, as JSON:

- ``devinterp1_results.json``: two result dicts of devinterp 1.3.2's
  ``estimate_learning_coeff_with_summary`` on a 31-parameter MLP regression ("summary_mala":
  3 chains x 20 draws, default nβ, devinterp's own init_loss, the MALA callback; "online": 4
  chains x 20 draws, nβ = 10, 5 burn-in steps, ``online=True``), with the nβ and L(w*) each
  run really used under "truth". Arrays are ``{"__array__": nested list, "dtype": ...}``.
- ``devinterp2_results.json``: for two runs of devinterp 2.0.1 on a 54-parameter bigram
  language model ("lm": 3 chains x 20 draws with one observable; "lm_burnin": 2 chains x 10
  draws, 4 burn-in steps, 2 steps between draws), the root dataset of the DataTree returned
  by ``sample`` and the Dataset returned by ``compute_llc``, each as xarray's
  ``to_dict(data="list")`` plus every variable's dtype.
- ``devinterp2_covariances.json``: on the same model, 4 chains x 60 draws with two observables
  ("train", "probe") for two weight restrictions ("full", "unembed"): both ``sample`` DataTrees,
  ``compute_susceptibilities`` of them and ``compute_bif`` (covariance and correlation) of the
  full run.

The tests rebuild the dicts / xarray objects from these files, so they need no devinterp.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from llc_speed import ensure_env  # noqa: E402

DATA = HERE.parent / "tests" / "data"


def main() -> int:
    DATA.mkdir(parents=True, exist_ok=True)
    jobs = [
        ("devinterp-1.3.2", "devinterp1_peer.py", "fixture", "devinterp1_results.json"),
        ("devinterp-2.0.1", "devinterp2_peer.py", "fixture", "devinterp2_results.json"),
        ("devinterp-2.0.1", "devinterp2_peer.py", "covariances", "devinterp2_covariances.json"),
    ]
    for env, script, mode, name in jobs:
        python = ensure_env(env)
        out = DATA / name
        print(f"[fixture] {env}: {script} -> {out}", flush=True)
        subprocess.run(
            [str(python), str(HERE / "peers" / script), mode, "--out", str(out)],
            check=True,
            stderr=subprocess.DEVNULL,
            env=dict(os.environ, TQDM_DISABLE="1", OMP_NUM_THREADS="1"),
        )
        print(f"          {out.stat().st_size / 1024:.0f} KiB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
