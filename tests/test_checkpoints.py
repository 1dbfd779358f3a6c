"""Checkpoints as people save them: training-loop dicts, Hugging Face model folders (Trainer, save_pretrained, shards), tied weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import devinterp_viz as dvz


def small_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))


def assert_same_weights(model: nn.Module, state: dict) -> None:
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, state[name], rtol=0, atol=0)


@pytest.mark.parametrize("layout", [
    lambda sd, opt, step: {"model_state_dict": sd, "optimizer_state_dict": opt.state_dict(), "epoch": 3, "loss": 0.25},
    lambda sd, opt, step: {"model": sd, "step": step},
    lambda sd, opt, step: {"state_dict": sd, "hyper_parameters": {"lr": 1e-3}},
], ids=["model_state_dict+optimizer", "model+step", "lightning-style state_dict"])
def test_training_loop_checkpoint_dicts_give_their_models_state(tmp_path, layout):
    for step in (10, 20):
        net = small_net(step)
        opt = torch.optim.Adam(net.parameters())
        net(torch.randn(2, 3)).sum().backward()
        opt.step()
        torch.save(layout(net.state_dict(), opt, step), tmp_path / f"ckpt_{step}.pt")
    trajectory = dvz.Trajectory.from_folder(tmp_path)
    assert trajectory.steps.tolist() == [10, 20]
    loaded = trajectory.model_at(small_net(0), 1)
    expected = torch.load(tmp_path / "ckpt_20.pt", weights_only=True)
    inner = next(v for v in expected.values() if isinstance(v, dict) and "0.weight" in v)
    assert_same_weights(loaded, inner)


def test_a_dict_without_a_state_dict_is_a_clear_error_naming_the_file_and_its_keys(tmp_path):
    torch.save({"weights": [1, 2, 3], "epoch": 2}, tmp_path / "run_5.pt")
    trajectory = dvz.Trajectory.from_folder(tmp_path)
    with pytest.raises(ValueError, match=r"run_5.pt holds a dict \('weights', 'epoch'\) with no state dict.*model_state_dict"):
        trajectory.state_dict(0)


def test_weights_a_model_ties_are_restored_from_its_own_tying(tmp_path):
    from safetensors.torch import save_model

    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(5, 3)
            self.unembed = nn.Linear(3, 5, bias=False)
            self.unembed.weight = self.embed.weight

    for step in (1, 2):
        torch.manual_seed(step)
        save_model(Tied(), str(tmp_path / f"step_{step}.safetensors"))  # stores the shared tensor once
    trajectory = dvz.Trajectory.from_folder(tmp_path)
    assert len(trajectory.tensor_shapes(0)) == 1
    model = Tied()
    dvz.analysis.sweep.check_trajectory_fits(trajectory, model)
    loaded = trajectory.model_at(model, 1)
    torch.manual_seed(2)
    assert_same_weights(loaded, Tied().state_dict())
    assert loaded.unembed.weight is loaded.embed.weight


def hf_gpt2(seed: int):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=8, vocab_size=20, n_positions=8, bos_token_id=1,
                                  eos_token_id=1)
    return transformers.GPT2LMHeadModel(cfg).eval()


def test_a_trainer_run_folder_of_checkpoint_n_folders_is_a_trajectory(tmp_path):
    (tmp_path / "runs").mkdir()  # what else a Trainer's output folder holds
    (tmp_path / "trainer_state.json").write_text("{}")
    for step in (500, 1000, 1500):
        hf_gpt2(step).save_pretrained(tmp_path / f"checkpoint-{step}")
    trajectory = dvz.Trajectory.from_folder(tmp_path)
    assert trajectory.steps.tolist() == [500, 1000, 1500]
    template = hf_gpt2(0)
    dvz.analysis.sweep.check_trajectory_fits(trajectory, template)  # lm_head.weight is tied, saved once
    loaded = trajectory.model_at(template, 2)
    assert_same_weights(loaded, hf_gpt2(1500).state_dict())
    tokens = torch.randint(2, 20, (16, 8), generator=torch.Generator().manual_seed(0))
    sweep = dvz.sweep_llc(trajectory, template, tokens, lambda m, b: m(b, labels=b).loss, lr=1e-4, nbeta=10.0,
                          num_chains=2, num_draws=4, batch_size=8, progress=False)
    assert sweep.llc_mean.shape == (1, 1, 3) and not sweep.failed


def test_sharded_save_pretrained_weights_are_merged(tmp_path):
    model = hf_gpt2(7)
    model.save_pretrained(tmp_path / "step_3", max_shard_size="2KB")
    assert len(list((tmp_path / "step_3").glob("model-*.safetensors"))) > 1
    trajectory = dvz.Trajectory.from_folder(tmp_path)
    assert_same_weights(trajectory.model_at(hf_gpt2(0), 0), model.state_dict())
    before = trajectory.fingerprint(0)
    shard = sorted((tmp_path / "step_3").glob("model-*.safetensors"))[0]
    hf_gpt2(8).save_pretrained(tmp_path / "step_3", max_shard_size="2KB")  # rewritten in place
    assert trajectory.fingerprint(0) != before and shard.exists()
