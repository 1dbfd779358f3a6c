"""Fault injection: stale-cache scenarios must recompute; killed saves, concurrent opens, torn, foreign
and hand-edited entries, read-only stores, unsafe keys, links and script-breaking names must be survived.

The scenarios live in tests/fault_scenarios.py, which bench/faults.py runs too and tabulates.
"""

from __future__ import annotations

import pytest

from tests import fault_scenarios as scenarios


@pytest.mark.parametrize("name", list(scenarios.STALE))
def test_a_changed_dependency_recomputes_and_an_unchanged_one_is_reused(name, tmp_path):
    outcome = scenarios.STALE[name](tmp_path)
    assert outcome.ok, f"{name}: {outcome.detail}"


@pytest.mark.parametrize("name", [n for n in scenarios.FAULTS if not n.startswith("kill during save")])
def test_the_fault_is_survived(name, tmp_path):
    outcome = scenarios.FAULTS[name](tmp_path)
    if outcome.skipped:
        pytest.skip(outcome.detail)
    assert outcome.ok, f"{name}: {outcome.detail}"


def test_a_writer_killed_during_a_save_leaves_a_whole_entry(tmp_path):
    outcome = scenarios.kill_during_save(tmp_path, rounds=3, seed=1)
    assert outcome.ok, outcome.detail
