"""Run every fault and stale-cache scenario of tests/fault_scenarios.py and tabulate what was survived.

    .venv/bin/python bench/faults.py                # writes bench/faults_results.md
    .venv/bin/python bench/faults.py --no-write     # print only

Faults (a writer SIGKILLed during saves at random moments, a store opened while another process
writes into it, torn / foreign / hand-edited entries, a read-only store, unsafe keys, links out of
a checkpoint folder, a script-breaking name in an offline page) count as survived when nothing was
lost, torn or silently served. Stale-cache scenarios (a change to something an estimate depends on)
count as recomputed when an unchanged rerun reused every estimate and the changed one recomputed
exactly the estimates that depend on the change.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import fault_scenarios as scenarios  # noqa: E402


def run_all(kill_rounds: int, seed: int) -> list[tuple[str, str, str, str, float]]:
    """``(kind, scenario, verdict, detail, seconds)`` for every scenario, each in a fresh folder."""
    plan = [("fault", name, run) for name, run in scenarios.FAULTS.items()]
    plan += [("stale", name, run) for name, run in scenarios.STALE.items()]
    rows = []
    for kind, name, run in plan:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="dvz-faults-") as folder:
            try:
                if run is scenarios.kill_during_save:
                    outcome = run(Path(folder), rounds=kill_rounds, seed=seed)
                else:
                    outcome = run(Path(folder))
            except Exception as err:  # noqa: BLE001 - a crash is a fault not survived, reported as such
                outcome = scenarios.Outcome(False, f"raised {type(err).__name__}: {err}")
                traceback.print_exc()
        verdict = "skipped" if outcome.skipped else ("yes" if outcome.ok else "**NO**")
        rows.append((kind, name, verdict, outcome.detail, time.perf_counter() - start))
        print(f"{kind:5s} {verdict:8s} {name}: {outcome.detail}", flush=True)
    return rows


def table(rows: list[tuple[str, str, str, str, float]]) -> str:
    """The markdown report: a summary line per kind, then one row per scenario."""
    def count(kind: str) -> tuple[int, int]:
        tried = [r for r in rows if r[0] == kind and r[2] != "skipped"]
        return len(tried), sum(r[2] == "yes" for r in tried)

    faults, stale = count("fault"), count("stale")
    skipped = [r[1] for r in rows if r[2] == "skipped"]
    lines = [
        "| | tried | survived / recomputed |",
        "|---|---:|---:|",
        f"| faults | {faults[0]} | {faults[1]} survived |",
        f"| stale-cache scenarios | {stale[0]} | {stale[1]} recomputed |",
        "",
        "| kind | scenario | ok | what happened | s |",
        "|---|---|---|---|---:|",
    ]
    lines += [f"| {kind} | {_cell(name)} | {verdict} | {_cell(detail)} | {seconds:.1f} |"
              for kind, name, verdict, detail, seconds in rows]
    if skipped:
        lines += ["", f"Skipped (could not be set up on this machine): {', '.join(skipped)}."]
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text safe in a markdown table cell (a scenario name holds ``</script>``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "/")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kill-rounds", type=int, default=10, help="SIGKILLs during saves (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--no-write", action="store_true", help="print the table, do not write bench/faults_results.md")
    args = parser.parse_args()
    rows = run_all(args.kill_rounds, args.seed)
    import devinterp_viz

    header = (f"# Fault injection\n\n`bench/faults.py` on {dt.date.today().isoformat()}, {platform.platform()}, "
              f"Python {platform.python_version()}, devinterp_viz {devinterp_viz.__version__}; kill moments seeded "
              f"{args.seed}.\n\n")
    report = header + table(rows) + "\n"
    print("\n" + report)
    if not args.no_write:
        (Path(__file__).parent / "faults_results.md").write_text(report)
    return 0 if all(r[2] in ("yes", "skipped") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
