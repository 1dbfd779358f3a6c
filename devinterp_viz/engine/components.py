"""Layer-level selections by name: embeddings, each layer, its attention and its MLP, the unembedding."""

from __future__ import annotations

import re

from torch import nn

from devinterp_viz.engine.selection import attention_heads

_EMBEDDING_NAME = re.compile(r"(^|\.)(embed|wte|wpe|pos_embed|embeddings)($|\.|_)", re.IGNORECASE)
_UNEMBEDDING_NAME = re.compile(r"(^|\.)(unembed|lm_head|embed_out|cls)($|\.)", re.IGNORECASE)


def layer_selections(model: nn.Module) -> dict[str, list[str]]:
    """Named parameter selections of a transformer's parts, each a ``params=`` value.

    Layers are the modules holding an attention module a head adapter knows (see
    :func:`attention_heads`). For each layer ``L``: ``"L"`` (all its weights), ``"L.attention"``
    (its attention module's) and ``"L.mlp"`` (its other weights except normalisation layers; absent
    in attention-only layers). Outside the layers: ``"embedding"`` (token and position embeddings)
    and ``"unembedding"`` (the output projection to the vocabulary; with tied weights it is the
    embedding's tensor, so selecting it moves both).

    Returns
    -------
    dict of str to list of str
        Label → parameter names, in model order; print one with ``dvz.describe_selection(model, names)``.

    Raises
    ------
    ValueError
        When the model has no attention module a head adapter knows.
    """
    attention = list(dict.fromkeys(head.module for head in attention_heads(model)))
    norms = set(_names_of(model, [m for m in model.modules() if "norm" in type(m).__name__.lower()]))
    selections: dict[str, list[str]] = {}
    in_layers: set[str] = set()
    for module in attention:
        layer = module.rpartition(".")[0]
        inside = _names_of(model, [model.get_submodule(layer)])
        in_layers.update(inside)
        attention_names = set(_names_of(model, [model.get_submodule(module)]))
        selections[layer] = inside
        selections[f"{layer}.attention"] = [n for n in inside if n in attention_names]
        mlp = [n for n in inside if n not in attention_names and n not in norms]
        if mlp:
            selections[f"{layer}.mlp"] = mlp
    unembedding = [n for n in _unembedding(model) if n not in in_layers]
    embedding = [n for n in _embedding(model) if n not in in_layers]
    return {**({"embedding": embedding} if embedding else {}), **selections,
            **({"unembedding": unembedding} if unembedding else {})}


def _names_of(model: nn.Module, modules: list[nn.Module]) -> list[str]:
    """The model's names of the modules' parameters, in model order (found by identity: a wrapper may
    reach a module by one path and name its parameters by another; a tied weight has its first name)."""
    wanted = {id(p) for module in modules for p in module.parameters()}
    return [name for name, param in model.named_parameters() if id(param) in wanted]


def _embedding(model: nn.Module) -> list[str]:
    modules = [m for path, m in model.named_modules() if isinstance(m, nn.Embedding)
               or (path and _EMBEDDING_NAME.search(path) and not _UNEMBEDDING_NAME.search(path))]
    own = [name for name, _ in model.named_parameters(recurse=False) if _EMBEDDING_NAME.search(name)]  # a root pos_embed
    return [n for n in _names_of(model, modules) + own if n not in _unembedding_only(model)]


def _unembedding(model: nn.Module) -> list[str]:
    getter = getattr(model, "get_output_embeddings", None)
    module = getter() if callable(getter) else None
    if isinstance(module, nn.Module):
        return _names_of(model, [module])
    return _names_of(model, [m for path, m in model.named_modules() if path and _UNEMBEDDING_NAME.search(path)])


def _unembedding_only(model: nn.Module) -> set[str]:
    """Unembedding parameters no Embedding module holds (an untied output projection)."""
    held = set(_names_of(model, [m for m in model.modules() if isinstance(m, nn.Embedding)]))
    return set(_unembedding(model)) - held
