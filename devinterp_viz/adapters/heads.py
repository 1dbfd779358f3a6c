"""Attention heads of Hugging Face and TransformerLens models, recognised by their modules' layout (no registration).

One convention for every family: head ``h`` moves its query, key and value slices, their biases,
and the slice of the output projection that reads it; the output projection's bias is shared by
all heads and belongs to none. With grouped-query attention (Llama, Mistral, Qwen with fewer K/V
heads than query heads) a head's key and value slices are those of its K/V group, which it shares
with the other heads of the group: their selections overlap there.

Nothing here imports ``transformers`` or ``transformer_lens``: a module is recognised by its
parameters' names and shapes and the attributes its family sets (``num_heads``, ``head_dim``...).
"""

from __future__ import annotations

import torch
from torch import nn

from devinterp_viz.engine.selection import register_head_adapter


def _rows(param: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    mask = torch.zeros_like(param, dtype=torch.bool)
    mask[start:stop] = True
    return mask


def _columns(param: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    mask = torch.zeros_like(param, dtype=torch.bool)
    mask[:, start:stop] = True
    return mask


def _is_linear(module: object) -> bool:
    return isinstance(module, nn.Linear)


def _output_slice(layer: nn.Module, start: int, stop: int) -> torch.Tensor:
    """The weight entries producing outputs ``start:stop`` of a Linear (out, in) or Conv1D (in, out)."""
    return _columns(layer.weight, start, stop) if hasattr(layer, "nf") else _rows(layer.weight, start, stop)


def _input_slice(layer: nn.Module, start: int, stop: int) -> torch.Tensor:
    """The weight entries reading inputs ``start:stop`` of a Linear (out, in) or Conv1D (in, out)."""
    return _rows(layer.weight, start, stop) if hasattr(layer, "nf") else _columns(layer.weight, start, stop)


class GPT2AttentionAdapter:
    """GPT-2 self-attention (``transformers``' ``GPT2Attention``): fused ``c_attn`` and ``c_proj`` are
    ``Conv1D`` layers, weights (in, out): ``c_attn`` columns ``[q | k | v]``, each ``num_heads``
    blocks of ``head_dim``; ``c_proj`` rows read the heads in order."""

    @staticmethod
    def matches(module: nn.Module) -> bool:
        c_attn, c_proj = getattr(module, "c_attn", None), getattr(module, "c_proj", None)
        return (hasattr(c_attn, "nf") and hasattr(c_proj, "nf") and hasattr(module, "num_heads")
                and hasattr(module, "head_dim") and not getattr(module, "is_cross_attention", False))

    def num_heads(self, module: nn.Module) -> int:
        return int(module.num_heads)

    def head_masks(self, module: nn.Module, head: int) -> dict[str, torch.Tensor]:
        width, size = module.c_proj.weight.shape[0], module.head_dim
        weight = torch.zeros_like(module.c_attn.weight, dtype=torch.bool)
        bias = torch.zeros_like(module.c_attn.bias, dtype=torch.bool)
        for block in range(3):
            start = block * width + head * size
            weight[:, start : start + size] = True
            bias[start : start + size] = True
        return {"c_attn.weight": weight, "c_attn.bias": bias,
                "c_proj.weight": _rows(module.c_proj.weight, head * size, (head + 1) * size)}


class GPTNeoXAttentionAdapter:
    """GPT-NeoX / Pythia attention: fused ``query_key_value`` Linear whose output rows hold, head by
    head, that head's ``[q, k, v]`` (3 × ``head_size`` rows each); ``dense`` columns read the heads."""

    @staticmethod
    def matches(module: nn.Module) -> bool:
        return (_is_linear(getattr(module, "query_key_value", None)) and _is_linear(getattr(module, "dense", None))
                and hasattr(module, "head_size"))

    def num_heads(self, module: nn.Module) -> int:
        return int(module.query_key_value.out_features // (3 * module.head_size))

    def head_masks(self, module: nn.Module, head: int) -> dict[str, torch.Tensor]:
        size = module.head_size
        start, stop = 3 * head * size, 3 * (head + 1) * size
        masks = {"query_key_value.weight": _rows(module.query_key_value.weight, start, stop),
                 "dense.weight": _columns(module.dense.weight, head * size, (head + 1) * size)}
        if module.query_key_value.bias is not None:
            masks["query_key_value.bias"] = _rows(module.query_key_value.bias, start, stop)
        return masks


class SeparateProjectionsAdapter:
    """Attention with separate ``q_proj``, ``k_proj``, ``v_proj`` Linears and an ``o_proj`` (Llama,
    Mistral, Qwen, Gemma) or ``out_proj`` (OPT, BART) Linear: rows of q/k/v per head, columns of the
    output projection per head. Grouped-query attention: head ``h`` uses K/V group
    ``h // (num_heads // num_key_value_heads)``."""

    @staticmethod
    def _out(module: nn.Module) -> nn.Module | None:
        return getattr(module, "o_proj", None) or getattr(module, "out_proj", None)

    @classmethod
    def matches(cls, module: nn.Module) -> bool:
        return (all(_is_linear(getattr(module, name, None)) for name in ("q_proj", "k_proj", "v_proj"))
                and _is_linear(cls._out(module)) and hasattr(module, "head_dim"))

    def num_heads(self, module: nn.Module) -> int:
        return int(module.q_proj.out_features // module.head_dim)

    def num_kv_groups(self, module: nn.Module) -> int:
        return int(module.k_proj.out_features // module.head_dim)

    def head_masks(self, module: nn.Module, head: int) -> dict[str, torch.Tensor]:
        size = module.head_dim
        out_name = "o_proj" if _is_linear(getattr(module, "o_proj", None)) else "out_proj"
        masks = {f"{out_name}.weight": _columns(self._out(module).weight, head * size, (head + 1) * size)}
        masks.update(self._projection_rows(module, "q_proj", head))
        return {**masks, **self.kv_masks(module, head // (self.num_heads(module) // self.num_kv_groups(module)))}

    def kv_masks(self, module: nn.Module, group: int) -> dict[str, torch.Tensor]:
        return {**self._projection_rows(module, "k_proj", group), **self._projection_rows(module, "v_proj", group)}

    @staticmethod
    def _projection_rows(module: nn.Module, name: str, index: int) -> dict[str, torch.Tensor]:
        size, projection = module.head_dim, getattr(module, name)
        masks = {f"{name}.weight": _rows(projection.weight, index * size, (index + 1) * size)}
        if projection.bias is not None:
            masks[f"{name}.bias"] = _rows(projection.bias, index * size, (index + 1) * size)
        return masks


class BertAttentionAdapter:
    """BERT-style encoder attention (``BertAttention``, RoBERTa, ...): ``self.query/key/value``
    Linears (rows per head) and the output projection ``output.dense`` (columns per head)."""

    @staticmethod
    def matches(module: nn.Module) -> bool:
        inner, output = getattr(module, "self", None), getattr(module, "output", None)
        return (inner is not None and all(_is_linear(getattr(inner, n, None)) for n in ("query", "key", "value"))
                and hasattr(inner, "num_attention_heads") and _is_linear(getattr(output, "dense", None)))

    def num_heads(self, module: nn.Module) -> int:
        return int(module.self.num_attention_heads)

    def head_masks(self, module: nn.Module, head: int) -> dict[str, torch.Tensor]:
        size = module.self.query.out_features // self.num_heads(module)
        rows = (head * size, (head + 1) * size)
        masks = {"output.dense.weight": _columns(module.output.dense.weight, *rows)}
        for name in ("query", "key", "value"):
            projection = getattr(module.self, name)
            masks[f"self.{name}.weight"] = _rows(projection.weight, *rows)
            if projection.bias is not None:
                masks[f"self.{name}.bias"] = _rows(projection.bias, *rows)
        return masks


class BridgeAttentionAdapter:
    """TransformerLens 4 ``TransformerBridge`` attention: ``q``, ``k``, ``v``, ``o`` bridge components
    around the Hugging Face projections they run (``_original_component``, a Linear or Conv1D), with
    the original attention module inside (which the bridge does not run for its fused ``qkv``)."""

    PARTS = ("q", "k", "v", "o")

    @classmethod
    def matches(cls, module: nn.Module) -> bool:
        children = dict(module.named_children())
        return all(hasattr(children.get(part), "_original_component") for part in cls.PARTS) and hasattr(module, "head_dim")

    @staticmethod
    def _layer(module: nn.Module, part: str) -> nn.Module:
        return getattr(module, part)._original_component

    def num_heads(self, module: nn.Module) -> int:
        q = self._layer(module, "q")
        return int((q.nf if hasattr(q, "nf") else q.out_features) // module.head_dim)

    def num_kv_groups(self, module: nn.Module) -> int:
        k = self._layer(module, "k")
        return int((k.nf if hasattr(k, "nf") else k.out_features) // module.head_dim)

    def head_masks(self, module: nn.Module, head: int) -> dict[str, torch.Tensor]:
        size = module.head_dim
        out = self._layer(module, "o")
        masks = {"o._original_component.weight": _input_slice(out, head * size, (head + 1) * size)}
        masks.update(self._part_rows(module, "q", head))
        return {**masks, **self.kv_masks(module, head // (self.num_heads(module) // self.num_kv_groups(module)))}

    def kv_masks(self, module: nn.Module, group: int) -> dict[str, torch.Tensor]:
        return {**self._part_rows(module, "k", group), **self._part_rows(module, "v", group)}

    def _part_rows(self, module: nn.Module, part: str, index: int) -> dict[str, torch.Tensor]:
        size, layer = module.head_dim, self._layer(module, part)
        masks = {f"{part}._original_component.weight": _output_slice(layer, index * size, (index + 1) * size)}
        if layer.bias is not None:
            masks[f"{part}._original_component.bias"] = _rows(layer.bias, index * size, (index + 1) * size)
        return masks


class StackedHeadsAdapter:
    """Attention with per-head weights on a leading head axis: TransformerLens' ``HookedTransformer``
    (``W_Q``, ``W_K``, ``W_V`` of shape (heads, d_model, d_head), ``W_O`` (heads, d_head, d_model),
    biases ``b_Q``, ``b_K``, ``b_V`` (heads, d_head)). ``b_O`` is shared by all heads.

    Grouped-query TransformerLens models store K/V as ``_W_K``/``_W_V`` (kv heads, ...): head ``h``
    then moves its group's slices.
    """

    PER_HEAD = ("W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "_W_K", "_W_V", "_b_K", "_b_V")

    @staticmethod
    def matches(module: nn.Module) -> bool:
        weight = getattr(module, "W_Q", None)
        return isinstance(weight, torch.Tensor) and weight.dim() == 3 and isinstance(getattr(module, "W_O", None), torch.Tensor)

    def num_heads(self, module: nn.Module) -> int:
        return int(module.W_Q.shape[0])

    KEY_VALUE = ("W_K", "W_V", "b_K", "b_V", "_W_K", "_W_V", "_b_K", "_b_V")

    def num_kv_groups(self, module: nn.Module) -> int:
        grouped = getattr(module, "_W_K", None)
        return int((grouped if isinstance(grouped, torch.Tensor) else module.W_K).shape[0])

    def head_masks(self, module: nn.Module, head: int) -> dict[str, torch.Tensor]:
        return self._slices(module, self.PER_HEAD, head, self.num_heads(module))

    def kv_masks(self, module: nn.Module, group: int) -> dict[str, torch.Tensor]:
        return self._slices(module, self.KEY_VALUE, group, self.num_kv_groups(module))

    @staticmethod
    def _slices(module: nn.Module, names: tuple[str, ...], index: int, count: int) -> dict[str, torch.Tensor]:
        """Masks of slice ``index // (count // rows)`` of each per-head parameter in ``names`` with ``rows``
        leading entries (a K/V group's slice when there are fewer K/V heads than ``count``)."""
        masks = {}
        for name, param in module.named_parameters(recurse=False):
            if name not in names or param.dim() < 2 or count % param.shape[0]:
                continue
            mask = torch.zeros_like(param, dtype=torch.bool)
            mask[index // (count // param.shape[0])] = True
            masks[name] = mask
        return masks


#: In the order they are tried: the bridge first (it also shows its original module's attributes).
ADAPTERS = (BridgeAttentionAdapter(), GPT2AttentionAdapter(), GPTNeoXAttentionAdapter(), SeparateProjectionsAdapter(),
            BertAttentionAdapter(), StackedHeadsAdapter())

for _adapter in ADAPTERS:
    register_head_adapter(_adapter.matches, _adapter)
