"""Zoo runs are trained once and read back; a folder of other settings is never overwritten."""

from __future__ import annotations

import pytest

from devinterp_viz.zoo.cache import KEY_FILE, cached_run


def test_a_cached_run_is_read_back_not_retrained(tmp_path, monkeypatch):
    monkeypatch.setenv("DVZ_CACHE", str(tmp_path))
    first, losses = cached_run("tms", steps=300, num_checkpoints=12)
    calls = []
    import devinterp_viz.zoo.tms as tms

    monkeypatch.setattr(tms, "train_tms", lambda **kw: calls.append(kw))
    again, losses_again = cached_run("tms", steps=300, num_checkpoints=12)
    assert calls == [] and list(again.steps) == list(first.steps) and losses_again == losses
    assert again.fingerprint(5) == first.fingerprint(5)


def test_a_folder_of_other_settings_is_a_clear_error_and_left_alone(tmp_path):
    cached_run("tms", folder=tmp_path / "run", steps=200, num_checkpoints=8)
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    with pytest.raises(ValueError, match="other settings"):
        cached_run("tms", folder=tmp_path / "run", steps=400, num_checkpoints=8)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before


def test_an_unfinished_run_is_trained_again(tmp_path):
    traj, _ = cached_run("tms", folder=tmp_path / "run", steps=200, num_checkpoints=8)
    (tmp_path / "run" / KEY_FILE).unlink()  # as if killed before the end
    again, _ = cached_run("tms", folder=tmp_path / "run", steps=200, num_checkpoints=8)
    assert again.fingerprint(3) == traj.fingerprint(3)


def test_unknown_kind():
    with pytest.raises(ValueError, match="unknown"):
        cached_run("gpt5")


def test_zoo_training_shows_its_progress_and_ci_silences_it(capsys, monkeypatch):
    import torch

    from devinterp_viz.zoo.training import train_with_checkpoints

    def train(ci: str | None) -> str:
        if ci is None:
            monkeypatch.delenv("CI", raising=False)
        else:
            monkeypatch.setenv("CI", ci)
        model = torch.nn.Linear(2, 1)
        batch = (torch.randn(8, 2), torch.randn(8, 1))
        train_with_checkpoints(model, lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(), lambda step: batch,
                               torch.optim.SGD(model.parameters(), lr=0.1), steps=20, checkpoint_steps=[0, 20],
                               eval_loss=lambda m: 0.0, config={})
        return capsys.readouterr().err

    shown = train(None)
    assert "training" in shown and "/20" in shown  # a bar over the 20 steps
    assert "training" not in train("1")
