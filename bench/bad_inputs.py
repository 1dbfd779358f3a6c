"""Run every bad input of tests/bad_input_cases.py and tabulate which got a clear error.

    .venv/bin/python bench/bad_inputs.py                # writes bench/bad_inputs_results.md
    .venv/bin/python bench/bad_inputs.py --no-write     # print only

A bad input counts as a clear error when the call raised a ValueError or TypeError before any
sampling started, with a message that names the argument (and the other words the case expects),
and left the user's model as it was. The few inputs handled without an error (a sweep checkpoint
with NaN weights is marked failed, the others computed) count when that happened as promised.
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

from tests import bad_input_cases as cases  # noqa: E402

MESSAGE_CHARS = 160  # of each message, in the table


def run_all() -> list[tuple[str, str, cases.Outcome, float]]:
    """``(group, case, outcome, seconds)`` for every case, each in a fresh folder."""
    plan = [("engine", name) for name in cases.ENGINE] + [("analysis / widgets", name) for name in cases.ANALYSIS]
    rows = []
    for group, name in plan:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="dvz-bad-inputs-") as folder:
            try:
                outcome = cases.try_case(cases.CASES[name], Path(folder))
            except Exception as err:  # noqa: BLE001 - the judge itself broke: reported as not clear
                outcome = cases.Outcome(False, f"the case crashed: {type(err).__name__}: {err}")
                traceback.print_exc()
        rows.append((group, name, outcome, time.perf_counter() - start))
        print(f"{'yes' if outcome.clear else 'NO ':3s} {name}: {outcome.detail}", flush=True)
    return rows


def table(rows: list[tuple[str, str, cases.Outcome, float]]) -> str:
    """The markdown report: the summary per group, then one row per bad input with its message."""
    groups = list(dict.fromkeys(group for group, *_ in rows))
    lines = ["| | bad inputs tried | clear error |", "|---|---:|---:|"]
    for group in groups:
        mine = [outcome for g, _, outcome, _ in rows if g == group]
        lines.append(f"| {group} | {len(mine)} | {sum(o.clear for o in mine)} |")
    lines.append(f"| **all** | {len(rows)} | {sum(o.clear for _, _, o, _ in rows)} |")
    lines += ["", "| bad input | clear | raised | message (start) | judged | s |", "|---|---|---|---|---|---:|"]
    for _, name, outcome, seconds in rows:
        message = outcome.message[:MESSAGE_CHARS] + ("…" if len(outcome.message) > MESSAGE_CHARS else "")
        lines.append(f"| {_cell(name)} | {'yes' if outcome.clear else '**NO**'} | {outcome.error or '-'} | "
                     f"{_cell(message)} | {_cell(outcome.detail)} | {seconds:.1f} |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text safe in a markdown table cell."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "/")
            .replace("\n", " "))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print the table, do not write bench/bad_inputs_results.md")
    args = parser.parse_args()
    rows = run_all()
    import devinterp_viz

    header = (f"# Bad inputs\n\n`bench/bad_inputs.py` on {dt.date.today().isoformat()}, {platform.platform()}, "
              f"Python {platform.python_version()}, devinterp_viz {devinterp_viz.__version__}. Clear = a ValueError or "
              "TypeError raised before any sampling, whose message names the argument, the model left as it was.\n\n")
    report = header + table(rows) + "\n"
    print("\n" + report)
    if not args.no_write:
        (Path(__file__).parent / "bad_inputs_results.md").write_text(report)
    return 0 if all(outcome.clear for _, _, outcome, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
