"""Synthetic languages with known structure (n-grams, repeats, brackets) and a stdlib code corpus.

Tokens are ASCII code points (vocabulary 128), so the brackets of the synthetic bracket
language are the same tokens as the brackets of Python source. Every distribution is a
function of its seed only; the language itself (its bigram and skip-gram tables) is fixed.

Distributions (:func:`make_distribution`)
-----------------------------------------
``"multigram"``
    A Markov chain with skips: the next token follows a bigram rule of the previous token
    (probability 0.5, one of two successors), a skip-gram rule of the token two back
    (0.3, one successor) or is uniform (0.2). Heads that memorise n-grams and skip-grams help.
``"induction"``
    Multigram text in which a span of ``seq_len // 4`` to ``seq_len // 2 - 1`` uniformly random
    words occurs twice (at random places); after the
    first token of the second copy, the rest of the span is predictable only by copying.
``"brackets"``
    Random words with nested brackets ``( ) [ ] { }`` (depth ≤ 4): a closing bracket always
    matches the innermost open one.
``"code"``
    Windows of Python source from the standard library of the running interpreter, one
    byte per token (non-ASCII bytes become token 0).
``"full"``
    The training distribution: a per-sequence mixture with weights :data:`FULL_MIXTURE`
    (80% induction sequences, whose background is multigram text, 10% brackets, 10% code).
    Repeats are that common so that induction heads form within minutes on a CPU.
``"repeated"``
    The induction probe: uniformly random words, repeated once (first half = second half).
"""

from __future__ import annotations

import functools
import random
import sysconfig
from pathlib import Path

import torch

VOCAB_SIZE = 128
BRACKETS = "()[]{}"
OPENERS = torch.tensor([ord(c) for c in BRACKETS[0::2]])
CLOSERS = torch.tensor([ord(c) for c in BRACKETS[1::2]])
WORDS = torch.tensor([t for t in range(VOCAB_SIZE) if chr(t) not in BRACKETS])
LANGUAGE_SEED = 0
FULL_MIXTURE = {"induction": 0.8, "brackets": 0.1, "code": 0.1}
DISTRIBUTIONS = ("full", "multigram", "induction", "brackets", "code", "repeated")
CODE_CORPUS_BYTES = 2_000_000


@functools.lru_cache(maxsize=1)
def grammar() -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed rules of the multigram language.

    Returns
    -------
    bigram : torch.Tensor, shape (VOCAB_SIZE, 2)
        Two successor words for every token.
    skipgram : torch.Tensor, shape (VOCAB_SIZE,)
        The word that follows two positions after every token.
    """
    gen = torch.Generator().manual_seed(LANGUAGE_SEED)
    bigram = WORDS[torch.randint(0, len(WORDS), (VOCAB_SIZE, 2), generator=gen)]
    skipgram = WORDS[torch.randint(0, len(WORDS), (VOCAB_SIZE,), generator=gen)]
    return bigram, skipgram


def make_distribution(name: str, num_sequences: int, seq_len: int, seed: int = 0) -> torch.Tensor:
    """Sample token sequences from a named distribution.

    Parameters
    ----------
    name : {"full", "multigram", "induction", "brackets", "code", "repeated"}
        See the module docstring.
    num_sequences, seq_len : int
        Output shape; ``seq_len >= 8`` (``"repeated"`` needs an even length).
    seed : int
        Same seed, same tensor.

    Returns
    -------
    torch.LongTensor, shape (num_sequences, seq_len)
        Token ids in ``[0, VOCAB_SIZE)``.
    """
    if name not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution {name!r}; choose one of {', '.join(DISTRIBUTIONS)}")
    if seq_len < 8 or num_sequences < 1:
        raise ValueError(f"need num_sequences >= 1 and seq_len >= 8, got {num_sequences}, {seq_len}")
    gen = torch.Generator().manual_seed(seed)
    if name == "full":
        return _mixture(num_sequences, seq_len, gen)
    return _SAMPLERS[name](num_sequences, seq_len, gen)


def _mixture(num_sequences: int, seq_len: int, gen: torch.Generator) -> torch.Tensor:
    names = list(FULL_MIXTURE)
    weights = torch.tensor([FULL_MIXTURE[n] for n in names])
    component = torch.multinomial(weights, num_sequences, replacement=True, generator=gen)
    out = torch.empty(num_sequences, seq_len, dtype=torch.long)
    for index, name in enumerate(names):
        rows = torch.nonzero(component == index).flatten()
        if len(rows):
            out[rows] = _SAMPLERS[name](len(rows), seq_len, gen)
    return out


def _random_words(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    return WORDS[torch.randint(0, len(WORDS), shape, generator=gen)]


def _multigram(num_sequences: int, seq_len: int, gen: torch.Generator) -> torch.Tensor:
    bigram, skipgram = grammar()
    out = _random_words((num_sequences, seq_len), gen)  # the uniform choice, overwritten by rules
    rule = torch.rand(num_sequences, seq_len, generator=gen)
    branch = torch.randint(0, 2, (num_sequences, seq_len), generator=gen)
    for t in range(1, seq_len):
        follow = bigram[out[:, t - 1], branch[:, t]]
        out[:, t] = torch.where(rule[:, t] < 0.5, follow, out[:, t])
        if t >= 2:
            skip = skipgram[out[:, t - 2]]
            out[:, t] = torch.where((rule[:, t] >= 0.5) & (rule[:, t] < 0.8), skip, out[:, t])
    return out


def _induction(num_sequences: int, seq_len: int, gen: torch.Generator) -> torch.Tensor:
    out = _multigram(num_sequences, seq_len, gen)
    shortest, longest = seq_len // 4, seq_len // 2 - 1
    span = torch.randint(shortest, longest + 1, (num_sequences,), generator=gen)
    first = (torch.rand(num_sequences, generator=gen) * (seq_len - 2 * span + 1)).long()
    second = first + span + (torch.rand(num_sequences, generator=gen) * (seq_len - first - 2 * span + 1)).long()
    offsets = torch.arange(longest)
    inside = offsets < span[:, None]
    content = _random_words((num_sequences, longest), gen)
    rows = torch.arange(num_sequences)[:, None].expand(-1, longest)
    for start in (first, second):
        cols = (start[:, None] + offsets).clamp(max=seq_len - 1)
        out[rows[inside], cols[inside]] = content[inside]
    return out


def _brackets(num_sequences: int, seq_len: int, gen: torch.Generator, max_depth: int = 4) -> torch.Tensor:
    out = _random_words((num_sequences, seq_len), gen)
    stack = torch.zeros(num_sequences, max_depth, dtype=torch.long)
    depth = torch.zeros(num_sequences, dtype=torch.long)
    rows = torch.arange(num_sequences)
    choice = torch.rand(num_sequences, seq_len, generator=gen)
    kind = torch.randint(0, len(OPENERS), (num_sequences, seq_len), generator=gen)
    for t in range(seq_len):
        opens = (choice[:, t] < 0.25) & (depth < max_depth)
        closes = (choice[:, t] >= 0.25) & (choice[:, t] < 0.5) & (depth > 0)
        top = stack[rows, (depth - 1).clamp(min=0)]
        out[:, t] = torch.where(opens, OPENERS[kind[:, t]], torch.where(closes, CLOSERS[top], out[:, t]))
        stack[rows[opens], depth[opens]] = kind[opens, t]
        depth = depth + opens.long() - closes.long()
    return out


def _repeated(num_sequences: int, seq_len: int, gen: torch.Generator) -> torch.Tensor:
    if seq_len % 2:
        raise ValueError(f"the repeated-sequence probe needs an even seq_len, got {seq_len}")
    half = _random_words((num_sequences, seq_len // 2), gen)
    return torch.cat([half, half], dim=1)


def _code(num_sequences: int, seq_len: int, gen: torch.Generator) -> torch.Tensor:
    corpus = code_corpus()
    starts = torch.randint(0, len(corpus) - seq_len, (num_sequences,), generator=gen)
    return corpus[starts[:, None] + torch.arange(seq_len)]


@functools.lru_cache(maxsize=1)
def code_corpus(num_bytes: int = CODE_CORPUS_BYTES) -> torch.Tensor:
    """Python source from this interpreter's standard library as tokens.

    A fixed pseudo-random sample (seed :data:`LANGUAGE_SEED`) of the stdlib's ``.py`` files,
    test suites and site-packages excluded, concatenated until ``num_bytes`` bytes. The
    corpus depends on the Python version installed; nothing is downloaded.

    Returns
    -------
    torch.LongTensor, shape (num_bytes,)
        One token per byte: the ASCII code, or 0 for bytes >= 128.
    """
    files = stdlib_sources()
    random.Random(LANGUAGE_SEED).shuffle(files)
    chunks, total = [], 0
    for path in files:
        data = path.read_bytes()
        chunks.append(data)
        total += len(data)
        if total >= num_bytes:
            break
    raw = torch.frombuffer(bytearray(b"".join(chunks)[:num_bytes]), dtype=torch.uint8).long()
    return torch.where(raw < VOCAB_SIZE, raw, torch.zeros_like(raw))


def stdlib_sources() -> list[Path]:
    """Sorted paths of the standard library's ``.py`` files (no tests, no site-packages)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    excluded = {"site-packages", "dist-packages", "test", "tests", "idle_test"}
    files = sorted(p for p in root.rglob("*.py") if not excluded.intersection(p.relative_to(root).parts))
    if not files:
        raise RuntimeError(f"no Python source files found under the standard library at {root}")
    return files


_SAMPLERS = {
    "multigram": _multigram,
    "induction": _induction,
    "brackets": _brackets,
    "code": _code,
    "repeated": _repeated,
}


#: Names of the ASCII control characters (token ids 0–31), shown instead of their invisible glyphs.
CONTROL_NAMES = ("NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "\\t", "\\n", "VT", "FF", "\\r", "SO",
                 "SI", "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB", "ESC", "FS", "GS",
                 "RS", "US")


def token_text(token: int) -> str:
    """A printable label for a token of these languages (ASCII code points).

    Printable characters stand for themselves, a space is "␣", control characters get their
    names ("NUL", "\\n", …, "DEL"), so no token renders as an empty box.

    Raises
    ------
    ValueError
        When ``token`` is not in ``[0, VOCAB_SIZE)``.
    """
    token = int(token)
    if not 0 <= token < VOCAB_SIZE:
        raise ValueError(f"token {token} is outside the vocabulary [0, {VOCAB_SIZE}) of the zoo's languages")
    if token < len(CONTROL_NAMES):
        return CONTROL_NAMES[token]
    return {32: "␣", 127: "DEL"}.get(token, chr(token))


def token_texts(tokens: torch.Tensor | list[int]) -> list[str]:
    """:func:`token_text` of every token of a sequence, shape (pos,) → a list of pos labels."""
    return [token_text(t) for t in (tokens.tolist() if hasattr(tokens, "tolist") else tokens)]
