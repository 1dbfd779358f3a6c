"""Weight selections for refined LLC: names, globs, masks and attention heads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import devinterp_viz as dvz
from tests.conftest import assert_unchanged, snapshot


class TinyAttentionModel(nn.Module):
    def __init__(self, embed=8, heads=2):
        super().__init__()
        self.embed = nn.Embedding(10, embed)
        self.attn = nn.MultiheadAttention(embed, heads, batch_first=True)
        self.head = nn.Linear(embed, 10)

    def forward(self, tokens):
        h = self.embed(tokens)
        out, _ = self.attn(h, h, h, need_weights=False)
        return self.head(h + out)


def next_token_loss(model, batch):
    logits = model(batch[:, :-1])
    return nn.functional.cross_entropy(logits.reshape(-1, 10), batch[:, 1:].reshape(-1))


def test_names_modules_and_globs_select_the_right_tensors():
    model = TinyAttentionModel()
    assert dvz.resolve_selection(model, "head.weight").names == ["head.weight"]
    assert dvz.resolve_selection(model, "head").names == ["head.weight", "head.bias"]
    assert dvz.resolve_selection(model, "*bias").names == ["attn.in_proj_bias", "attn.out_proj.bias", "head.bias"]
    union = dvz.resolve_selection(model, ["embed", "head.bias"])
    assert union.names == ["embed.weight", "head.bias"]
    assert union.num_selected == 80 + 10


def test_attention_heads_select_their_query_key_value_and_output_slices():
    model = TinyAttentionModel(embed=8, heads=2)
    heads = dvz.attention_heads(model)
    assert [h.label for h in heads] == ["attn.head0", "attn.head1"]
    sel = dvz.resolve_selection(model, heads[1])
    head_dim = 4
    # q, k, v rows (3 × 4 × 8) + their biases (3 × 4) + output columns (8 × 4)
    assert sel.num_selected == 3 * head_dim * 8 + 3 * head_dim + 8 * head_dim
    in_mask = sel.masks["attn.in_proj_weight"]
    assert in_mask[4:8].all() and in_mask[12:16].all() and in_mask[20:24].all() and not in_mask[:4].any()
    assert sel.masks["attn.out_proj.weight"][:, 4:].all() and not sel.masks["attn.out_proj.weight"][:, :4].any()
    both = dvz.resolve_selection(model, heads)
    assert both.num_selected == 2 * sel.num_selected


def test_head_refined_llc_runs_vectorised_and_keeps_the_model(capsys):
    torch.manual_seed(0)
    model = TinyAttentionModel()
    tokens = torch.randint(0, 10, (64, 6))
    before = snapshot(model)
    res = dvz.estimate_llc(model, tokens, next_token_loss, params=dvz.attention_heads(model)[0], lr=1e-4, nbeta=10.0,
                           num_chains=2, num_draws=10, batch_size=16, progress=False)
    assert res.config["vectorized"] and np.isfinite(res.loss_trace).all()
    assert res.config["num_params"] == 3 * 4 * 8 + 3 * 4 + 8 * 4
    assert_unchanged(model, before)


def test_describe_selection_prints_what_moves(capsys):
    model = TinyAttentionModel()
    sel = dvz.describe_selection(model, "head")
    out = capsys.readouterr().out
    assert "head.weight" in out and "(frozen)" in out and f"{sel.num_selected} of {sel.num_total} parameters move" in out


def test_selection_errors_name_the_problem():
    model = TinyAttentionModel()
    with pytest.raises(ValueError, match="Close names: .*head.weight"):
        dvz.resolve_selection(model, "head.wieght")
    with pytest.raises(ValueError, match="out of range; 'attn' has 2 heads"):
        dvz.resolve_selection(model, dvz.HeadSelection("attn", 5))
    with pytest.raises(ValueError, match="no attention module"):
        dvz.attention_heads(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="has shape"):
        dvz.resolve_selection(model, {"head.bias": torch.ones(3, dtype=torch.bool)})
    with pytest.raises(TypeError, match="params must be None"):
        dvz.resolve_selection(model, [3.5])


def test_custom_head_adapters_plug_in():
    class Heads(nn.Module):
        def __init__(self):
            super().__init__()
            self.qk = nn.Parameter(torch.zeros(3, 5))  # one row per head

    class RowAdapter:
        def num_heads(self, module):
            return module.qk.shape[0]

        def head_masks(self, module, head):
            mask = torch.zeros_like(module.qk, dtype=torch.bool)
            mask[head] = True
            return {"qk": mask}

    dvz.register_head_adapter(Heads, RowAdapter())
    model = nn.Sequential(Heads())
    heads = dvz.attention_heads(model)
    assert len(heads) == 3 and dvz.resolve_selection(model, heads[2]).num_selected == 5


class StackedAttention(nn.Module):
    """TransformerLens' attention parameter layout (heads on the leading axis)."""

    def __init__(self, heads=3, d_model=6, d_head=2):
        super().__init__()
        self.W_Q = nn.Parameter(torch.randn(heads, d_model, d_head))
        self.W_K = nn.Parameter(torch.randn(heads, d_model, d_head))
        self.W_V = nn.Parameter(torch.randn(heads, d_model, d_head))
        self.W_O = nn.Parameter(torch.randn(heads, d_head, d_model))
        self.b_Q = nn.Parameter(torch.zeros(heads, d_head))
        self.b_K = nn.Parameter(torch.zeros(heads, d_head))
        self.b_V = nn.Parameter(torch.zeros(heads, d_head))
        self.b_O = nn.Parameter(torch.zeros(d_model))


def test_transformerlens_layout_is_recognised_without_registration():
    model = nn.ModuleDict({"blocks": nn.ModuleList([StackedAttention(), StackedAttention()])})
    heads = dvz.attention_heads(model)
    assert [h.label for h in heads][:4] == ["blocks.0.head0", "blocks.0.head1", "blocks.0.head2", "blocks.1.head0"]
    sel = dvz.resolve_selection(model, heads[4])
    assert sel.num_selected == 3 * 6 * 2 + 2 * 6 + 3 * 2  # Q, K, V, O slices and the q/k/v biases
    assert sel.masks["blocks.1.W_O"][1].all() and not sel.masks["blocks.1.W_O"][0].any()
    assert "blocks.1.b_O" not in sel.names


def test_real_transformerlens_3_model_if_installed():
    lens = pytest.importorskip("transformer_lens")
    try:
        lens.HookedTransformerConfig
    except ImportError:
        pytest.skip("TransformerLens 4 removed HookedTransformer; its TransformerBridge is tested in test_hf_models.py")
    cfg = lens.HookedTransformerConfig(n_layers=1, d_model=8, n_ctx=6, d_head=4, n_heads=2, d_vocab=10, attn_only=True)
    model = lens.HookedTransformer(cfg)
    heads = dvz.attention_heads(model)
    assert len(heads) == 2
    tokens = torch.randint(0, 10, (32, 6))
    res = dvz.estimate_llc(model, tokens, lambda m, b: m(b, return_type="loss"), params=heads[1], lr=1e-4,
                           nbeta=10.0, num_chains=2, num_draws=5, batch_size=8, progress=False)
    assert np.isfinite(res.loss_trace).all()
