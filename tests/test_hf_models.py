"""Attention heads of real Hugging Face and TransformerLens models, built from tiny configs (nothing downloaded).

For each family a head's selection is checked by what the weights *do*, not by their positions:
perturbing head h's query/key/value weights changes only head h's slice of the output projection's
input (and its K/V group's heads, with grouped-query attention), and zeroing head h's slice of the
output projection removes exactly what zeroing head h's input to it removes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import devinterp_viz as dvz

transformers = pytest.importorskip("transformers")

VOCAB, WIDTH, HEADS, HEAD_DIM, SEQ = 40, 16, 4, 4, 8


def gpt2():
    cfg = transformers.GPT2Config(n_layer=2, n_head=HEADS, n_embd=WIDTH, vocab_size=VOCAB, n_positions=SEQ,
                                  bos_token_id=1, eos_token_id=1)
    return transformers.GPT2LMHeadModel(cfg), "c_proj", 1


def neox():
    cfg = transformers.GPTNeoXConfig(num_hidden_layers=2, num_attention_heads=HEADS, hidden_size=WIDTH,
                                     intermediate_size=32, vocab_size=VOCAB, max_position_embeddings=SEQ)
    return transformers.GPTNeoXForCausalLM(cfg), "dense", 1


def llama_gqa():
    cfg = transformers.LlamaConfig(num_hidden_layers=2, num_attention_heads=HEADS, num_key_value_heads=2,
                                   hidden_size=WIDTH, intermediate_size=32, vocab_size=VOCAB, max_position_embeddings=SEQ)
    return transformers.LlamaForCausalLM(cfg), "o_proj", 2


def qwen2_gqa():
    cfg = transformers.Qwen2Config(num_hidden_layers=2, num_attention_heads=HEADS, num_key_value_heads=2,
                                   hidden_size=WIDTH, intermediate_size=32, vocab_size=VOCAB, max_position_embeddings=SEQ)
    return transformers.Qwen2ForCausalLM(cfg), "o_proj", 2


def bert():
    cfg = transformers.BertConfig(num_hidden_layers=2, num_attention_heads=HEADS, hidden_size=WIDTH,
                                  intermediate_size=32, vocab_size=VOCAB, max_position_embeddings=SEQ)
    return transformers.BertModel(cfg), "output.dense", 1


FAMILIES = {"gpt2": gpt2, "gpt_neox": neox, "llama (grouped-query)": llama_gqa, "qwen2 (grouped-query, q/k/v biases)": qwen2_gqa,
            "bert": bert}


def build(family):
    torch.manual_seed(0)
    model, out_name, group = FAMILIES[family]()
    model.config._attn_implementation = "eager"
    return model.eval(), out_name, group


def output(model, tokens):
    out = model(tokens)
    return out.logits if hasattr(out, "logits") else out.last_hidden_state


def projection_input(model, module_name, out_name, tokens):
    """The input of head module ``module_name``'s output projection, (batch, seq, heads, head_dim)."""
    seen = {}
    projection = model.get_submodule(f"{module_name}.{out_name}")
    handle = projection.register_forward_pre_hook(lambda mod, args: seen.setdefault("x", args[0].detach().clone()))
    try:
        output(model, tokens)
    finally:
        handle.remove()
    return seen["x"].reshape(*seen["x"].shape[:-1], HEADS, HEAD_DIM)


def perturbed(model, selection, keep, value=None):
    """A copy of ``model`` with the selection's entries of parameters for which ``keep(name)`` holds set to
    ``value`` (default: noise)."""
    import copy

    other = copy.deepcopy(model)
    params = dict(other.named_parameters())
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name in selection.names:
            if keep(name):
                mask = selection.masks.get(name, torch.ones_like(params[name], dtype=torch.bool))
                params[name][mask] = torch.randn(int(mask.sum()), generator=generator) if value is None else value
    return other


def one_head(family, index):
    """(model, output projection's name, K/V group size, tokens, head, its selection, the projection's prefix)."""
    model, out_name, group = build(family)
    tokens = torch.randint(2, VOCAB, (3, SEQ), generator=torch.Generator().manual_seed(0))
    head = dvz.attention_heads(model)[index]
    return model, out_name, group, tokens, head, dvz.resolve_selection(model, head), f"{head.module}.{out_name}."


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_has_its_heads_found_and_a_head_moves_its_qkv_slices_biases_and_output_slice(family):
    model, out_name, group = build(family)
    heads = dvz.attention_heads(model)
    assert len(heads) == 2 * HEADS and len({h.module for h in heads}) == 2
    h = heads[1]
    selection = dvz.resolve_selection(model, h)
    has_bias = any(name.endswith("bias") for name in selection.names)
    per_projection = WIDTH * HEAD_DIM + (HEAD_DIM if has_bias else 0)
    assert selection.num_selected == 3 * per_projection + WIDTH * HEAD_DIM, selection.rows
    out_bias = f"{h.module}.{out_name}.bias"
    assert out_bias not in selection.names or not selection.masks[out_bias].any()  # shared by all heads


@pytest.mark.parametrize("family", FAMILIES)
def test_a_heads_query_key_value_weights_reach_only_that_heads_output(family):
    model, out_name, group, tokens, head, selection, projection = one_head(family, 1)
    before = projection_input(model, head.module, out_name, tokens)
    after = projection_input(perturbed(model, selection, lambda name: not name.startswith(projection)), head.module,
                             out_name, tokens)
    changed = [(after[..., k, :] - before[..., k, :]).abs().max().item() > 1e-4 for k in range(HEADS)]
    sharing = {k for k in range(HEADS) if k // group == head.head // group}  # its K/V group (itself without GQA)
    assert changed[head.head] and all(not changed[k] for k in range(HEADS) if k not in sharing), changed


@pytest.mark.parametrize("family", FAMILIES)
def test_a_heads_output_slice_is_what_reads_that_head(family):
    model, out_name, group, tokens, head, selection, projection = one_head(family, 2)
    zeroed = perturbed(model, selection, lambda name: name.startswith(projection), value=0.0)
    module = model.get_submodule(f"{head.module}.{out_name}")

    def drop_head(mod, args):
        x = args[0].clone()
        x[..., head.head * HEAD_DIM : (head.head + 1) * HEAD_DIM] = 0.0
        return (x, *args[1:])

    handle = module.register_forward_pre_hook(drop_head)
    try:
        expected = output(model, tokens)
    finally:
        handle.remove()
    assert not torch.allclose(expected, output(model, tokens), atol=1e-5)
    torch.testing.assert_close(output(zeroed, tokens), expected, atol=1e-5, rtol=1e-4)


GROUPED = [family for family, build_family in FAMILIES.items() if build_family()[2] > 1]


@pytest.mark.parametrize("family", GROUPED)
def test_a_kv_group_moves_the_key_value_slices_its_heads_share_and_reaches_only_their_outputs(family):
    model, out_name, group, tokens, head, _, projection = one_head(family, 2)
    groups = dvz.kv_groups(model)
    assert len(groups) == 2 * HEADS // group
    kv = dvz.resolve_selection(model, groups[head.head // group])
    has_bias = any(name.endswith("bias") for name in kv.names)
    assert kv.num_selected == 2 * (WIDTH * HEAD_DIM + (HEAD_DIM if has_bias else 0)), kv.rows
    for member in range(group * (head.head // group), group * (head.head // group + 1)):
        head_selection = dvz.resolve_selection(model, dvz.HeadSelection(head.module, member))
        assert all((head_selection.masks[n] & kv.masks[n]).equal(kv.masks[n]) for n in kv.names)  # each head moves it too
    before = projection_input(model, head.module, out_name, tokens)
    after = projection_input(perturbed(model, kv, lambda name: True), head.module, out_name, tokens)
    changed = [(after[..., k, :] - before[..., k, :]).abs().max().item() > 1e-4 for k in range(HEADS)]
    assert changed == [k // group == head.head // group for k in range(HEADS)], changed


@pytest.mark.parametrize("family", FAMILIES)
def test_layer_selections_split_each_layer_into_its_attention_and_mlp_and_name_the_embeddings(family):
    model, _, _ = build(family)
    parts = dvz.layer_selections(model)
    names = [name for name, _ in model.named_parameters()]
    layers = sorted({h.module.rpartition(".")[0] for h in dvz.attention_heads(model)})
    assert [k for k in parts if k in layers] == layers and "embedding" in parts
    assert ("unembedding" in parts) == (model.get_output_embeddings() is not None)
    norms = {f"{m}.{p}" for m, module in model.named_modules() if "Norm" in type(module).__name__
             for p, _ in module.named_parameters(recurse=False)}
    for layer in layers:
        attention, mlp = set(parts[f"{layer}.attention"]), set(parts[f"{layer}.mlp"])
        assert attention and mlp and not attention & mlp and attention | mlp <= set(parts[layer])
        heads = [h for h in dvz.attention_heads(model) if h.module.rpartition(".")[0] == layer]
        assert set(dvz.resolve_selection(model, heads).names) <= attention  # every head's weights are its attention's
        left = set(parts[layer]) - attention - mlp
        assert left <= norms, left  # only normalisation layers are neither
    uncovered = {n for n in names if n not in set().union(*parts.values())}
    assert uncovered - norms <= {"pooler.dense.weight", "pooler.dense.bias"}, uncovered  # BERT's pooler is no layer's
    assert dvz.describe_selection(model, parts[f"{layers[0]}.mlp"], print_table=False).num_selected > 0


def test_a_gpt2_heads_refined_llc_runs_and_moves_the_selected_weights_only():
    model, _, _ = build("gpt2")
    tokens = torch.randint(2, VOCAB, (32, SEQ), generator=torch.Generator().manual_seed(0))
    heads = dvz.attention_heads(model)
    results = dvz.estimate_llc_selections(
        model, tokens, lambda m, b: m(b, labels=b).loss, {h.label: h for h in heads[:2]}, lr=1e-4, nbeta=10.0,
        num_chains=2, num_draws=6, batch_size=8, progress=False)
    for head, res in zip(heads[:2], results.values()):
        assert np.isfinite(res.loss_trace).all()
        assert res.config["num_params"] == dvz.resolve_selection(model, head).num_selected == 3 * (16 * 4 + 4) + 16 * 4


def _bridge():
    lens = pytest.importorskip("transformer_lens")
    if not hasattr(lens, "TransformerBridge"):
        pytest.skip("TransformerLens < 4 has no TransformerBridge")
    import tempfile

    from tokenizers import Tokenizer, models

    vocab = {f"t{i}": i for i in range(VOCAB)}
    made = transformers.PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="t0")),
                                                unk_token="t0", pad_token="t0", eos_token="t1", bos_token="t1")
    with tempfile.TemporaryDirectory() as folder:  # the bridge reloads its tokenizer by path
        made.save_pretrained(folder)
        tokenizer = transformers.PreTrainedTokenizerFast.from_pretrained(folder)
        model, _, _ = build("gpt2")
        return lens.TransformerBridge.boot_transformers("gpt2", hf_model=model, tokenizer=tokenizer)


def test_transformerlens_4_bridge_heads_are_the_projections_it_runs(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bridge = _bridge()
    heads = dvz.attention_heads(bridge)
    assert len(heads) == 2 * HEADS  # the original GPT2Attention inside each bridge is not counted again
    selection = dvz.resolve_selection(bridge, heads[1])
    assert selection.num_selected == 3 * (WIDTH * HEAD_DIM + HEAD_DIM) + WIDTH * HEAD_DIM
    tokens = torch.randint(2, VOCAB, (2, SEQ))
    loss = bridge(tokens, return_type="loss")
    loss.backward()
    params = dict(bridge.named_parameters())
    assert all(params[name].grad is not None and params[name].grad[selection.masks[name]].abs().sum() > 0
               for name in selection.names)  # every selected weight is one the forward pass uses
    parts = dvz.layer_selections(bridge)  # found through the bridge's own module paths
    assert {"embedding", "unembedding"} <= set(parts) and sum(k.endswith(".mlp") for k in parts) == 2
    assert len(dvz.kv_groups(bridge)) == 2 * HEADS  # no grouping: each head is its own K/V group


def test_hf_batches_numpy_arrays_and_devinterp_style_losses_are_taken_as_people_write_them():
    model, _, _ = build("gpt2")
    ids = torch.randint(2, VOCAB, (32, SEQ), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    kwargs = dict(lr=1e-4, nbeta=10.0, num_chains=2, num_draws=4, batch_size=8, progress=False, vectorize=False)
    reference = dvz.estimate_llc(model, batch, lambda m, b: m(**b).loss, **kwargs)

    def evaluate(m, b):  # devinterp's evaluate: (loss, outputs)
        out = m(**b)
        return out.loss, out.logits

    for data, loss_fn in (({k: v.numpy() for k, v in batch.items()}, lambda m, b: m(**b).loss),
                          (batch, lambda m, b: m(**b)),  # a Hugging Face output: its .loss
                          (batch, evaluate),
                          ([{k: v[i] for k, v in batch.items()} for i in range(32)], lambda m, b: m(**b).loss)):
        np.testing.assert_array_equal(dvz.estimate_llc(model, data, loss_fn, **kwargs).loss_trace, reference.loss_trace)


def test_every_chains_vectorised_gradient_is_its_own_gradient_with_tied_weights():
    from devinterp_viz.engine.potential import FlatLoss

    model, _, _ = build("gpt2")  # GPT-2 ties its unembedding to the token embedding: two uses of one tensor
    flat_loss = FlatLoss(model, lambda m, b: m(b, labels=b).loss, dvz.resolve_selection(model), torch.device("cpu"))
    chains = 3
    generator = torch.Generator().manual_seed(0)
    flats = flat_loss.w_star + 0.01 * torch.randn(chains, flat_loss.w_star.numel(), generator=generator)
    batches = torch.randint(2, VOCAB, (chains, 4, SEQ), generator=generator)
    _, grads = flat_loss.batched_value_and_grad(flats, batches, shared_batch=False, chunk_size=None)
    for chain in range(chains):
        _, expected = flat_loss.value_and_grad(flats[chain], batches[chain])
        torch.testing.assert_close(grads[chain], expected, atol=1e-6, rtol=1e-5)


def test_per_token_observables_of_a_gpt2_on_its_own_training_batch_average_to_the_loss_trace():
    """With the whole data set as one batch, the recorded loss at a draw is the mean of that draw's
    per-token losses on the same data: the observable is evaluated at the draw's weights, per chain,
    with the HF batch (a dict) passed as the user's loss gets it."""
    model, _, _ = build("gpt2")
    ids = torch.randint(2, VOCAB, (16, SEQ), generator=torch.Generator().manual_seed(1))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    def per_token(m, b):
        logits = m(**b).logits[:, :-1]
        return torch.nn.functional.cross_entropy(logits.transpose(1, 2), b["input_ids"][:, 1:], reduction="none")

    res = dvz.estimate_llc(model, batch, lambda m, b: per_token(m, b).mean(), lr=1e-4, nbeta=10.0, num_chains=3,
                           num_draws=5, batch_size=16, progress=False, observables={"train": batch}, per_sample_loss=per_token)
    recorded = res.observables["train"]
    assert recorded.shape == (3, 5, 16 * (SEQ - 1)) and res.observable_index["train"].shape == (16 * (SEQ - 1), 2)
    np.testing.assert_allclose(recorded.mean(axis=2), res.loss_trace, rtol=1e-5)
    assert np.ptp(res.loss_trace[:, -1]) > 0  # the chains moved apart: each chain's observable is its own
