"""Problem sizes for timing: ROWS x VOCAB, presets named after real vocabularies.

A size is a (rows, vocab) pair: softmax over ``vocab`` entries, ``rows``
times (the batch times the sequence positions being decoded). ``--sizes``
takes a comma-separated list whose items are

- ``ROWSxVOCAB``: ``8x128256``;
- ``ROWSxNAME``: ``8xllama3``, a vocabulary by model name;
- a preset: ``quick``, ``default``, ``full``, ``small``, or a vocabulary name
  alone (``llama3``: that vocabulary at 1, 8, 64 and 512 rows).

``working_set`` estimates the memory a timing unit needs, so that a size too
large for ``--max-bytes`` is skipped with its reason instead of crashing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ..backend import PASSES, TIMED_OPS
from .dtypes import info
from ..errors import UsageError

# Vocabulary sizes of real tokenizers: the softmax a language model's sampler runs.
VOCABULARIES = {
    "llama2": 32000,
    "gpt2": 50257,
    "llama3": 128256,
    "qwen2": 151936,
    "gemma": 256000,
}
SMALL_VOCAB = 1024  # far below any tokenizer: per-call overhead dominates
ROWS = (1, 8, 64, 512, 4096)


@dataclass(frozen=True, order=True)
class Size:
    """One problem size: ``rows`` independent softmaxes over ``vocab`` entries."""

    rows: int
    vocab: int

    @property
    def elements(self) -> int:
        """rows x vocab."""
        return self.rows * self.vocab

    @property
    def label(self) -> str:
        """``ROWSxVOCAB``, the form ``--sizes`` takes and the tables show."""
        return f"{self.rows}x{self.vocab}"

    @property
    def name(self) -> str:
        """The label with the vocabulary's model name, where it has one."""
        for model, vocab in VOCABULARIES.items():
            if vocab == self.vocab:
                return f"{self.label} ({model})"
        return self.label

    def nbytes(self, dtype: str) -> int:
        """Bytes of one input array of this size in ``dtype``."""
        return self.elements * info(dtype).itemsize


def _grid(rows, vocabs) -> list[Size]:
    return [Size(r, v) for v in vocabs for r in rows]


PRESETS: dict[str, list[Size]] = {
    # --quick: one small vocabulary and two real ones, a few MiB each; proves
    # every backend runs in both cache modes, not for judging speed.
    "quick": [Size(8, 32000), Size(4, 128256), Size(1, 256000)],
    # The default run: the small and the real vocabularies at decode-like row
    # counts (1 and 8) and one batch-like one (64). Each input is at most 64 MiB
    # in float32, so the whole CPU run stays within minutes.
    "default": [Size(1, SMALL_VOCAB), Size(64, SMALL_VOCAB)]
    + _grid((1, 8, 64), (32000, 128256))
    + _grid((1, 8), (50257, 151936, 256000))
    + [Size(64, 256000)],
    # Everything, up to 4096 x 256000 (4 GiB in float32); sizes that do not fit
    # --max-bytes are skipped with the reason.
    "full": _grid(ROWS, (SMALL_VOCAB,) + tuple(VOCABULARIES.values())),
    "small": _grid((1, 64, 4096), (SMALL_VOCAB,)),
    # Language-model heads: a training batch of tokens over real vocabularies
    # (the cross-entropy workload); what does not fit --max-bytes is skipped.
    "lmhead": _grid((1024, 4096, 8192), (32000, 128256, 256000)),
}
for _model, _vocab in VOCABULARIES.items():
    PRESETS[_model] = _grid((1, 8, 64, 512), (_vocab,))

_ITEM = re.compile(r"^(\d+)x([a-z0-9]+)$")


def valid_forms() -> str:
    """The accepted forms, for error messages."""
    return (
        "valid forms: ROWSxVOCAB (e.g. 8x128256), ROWSxMODEL (e.g. 8xllama3; models: "
        f"{', '.join(VOCABULARIES)}), or a preset ({', '.join(PRESETS)}), comma-separated"
    )


def parse(spec: str) -> list[Size]:
    """The sizes named by a ``--sizes`` spec, in order, duplicates dropped.

    Raises ``UsageError`` (one line naming the bad item and the valid forms)
    on anything malformed.
    """
    if spec is None or not spec.strip():
        raise UsageError(f"--sizes is empty; {valid_forms()}")
    sizes: list[Size] = []
    for raw in spec.split(","):
        item = raw.strip().lower()
        if not item:
            raise UsageError(f"--sizes {spec!r} has an empty item; {valid_forms()}")
        if item in PRESETS:
            sizes.extend(PRESETS[item])
            continue
        match = _ITEM.match(item)
        if not match:
            raise UsageError(f"--sizes item {raw.strip()!r} is not ROWSxVOCAB or a preset; {valid_forms()}")
        rows_text, vocab_text = match.groups()
        rows = int(rows_text)
        if vocab_text.isdigit():
            vocab = int(vocab_text)
        elif vocab_text in VOCABULARIES:
            vocab = VOCABULARIES[vocab_text]
        else:
            raise UsageError(f"--sizes item {raw.strip()!r}: unknown vocabulary {vocab_text!r}; {valid_forms()}")
        if rows < 1 or vocab < 1:
            raise UsageError(f"--sizes item {raw.strip()!r}: rows and vocab must be at least 1")
        sizes.append(Size(rows, vocab))
    return list(dict.fromkeys(sizes))


# Arrays a backend may hold at once besides its inputs, in its working
# precision (at least float32): the NumPy three-pass forms keep x - max,
# exp(...) and the output; one more for slack (an upcast copy of a half input).
TEMPORARIES = 4
# rows x vocab arrays a call of each (op, pass) holds per buffer set: its
# inputs, what it saved of the forward, its outputs (the loss alone is a
# vector; its gradient replaces dy by the targets).
ARRAYS_PER_CALL = {
    **{(op, pass_): (2 if pass_ == "fwd" else 4) for op in TIMED_OPS for pass_ in PASSES},
    ("cross_entropy", "fwd"): 1, ("cross_entropy", "bwd"): 3, ("cross_entropy", "full"): 3,
}
# float32 sources the buffers are refilled from: x, and dy (or y) for the softmax gradients.
SOURCES = {(op, pass_): 1 if op == "cross_entropy" or pass_ == "fwd" else 2 for op in TIMED_OPS for pass_ in PASSES}


def working_set(size: Size, dtype: str, buffers: int, op: str = "softmax", pass_: str = "fwd") -> int:
    """Estimated peak bytes of one timing unit of ``op`` in ``pass_``.

    Per buffer set (the cold-cache rotation, or 1) the inputs of a call and
    what it saves for the backward (dy, y, a graph); once, the outputs, the
    float32 sources the buffers are refilled from, the copy measurement's
    output, and ``TEMPORARIES`` arrays in the working precision.
    """
    itemsize = info(dtype).itemsize
    working = max(itemsize, 4)
    per_call = ARRAYS_PER_CALL[(op, pass_)]
    return size.elements * (itemsize * (per_call * buffers + 1) + 4 * SOURCES[(op, pass_)] + working * TEMPORARIES)


def available_memory() -> Optional[int]:
    """MemAvailable from /proc/meminfo, in bytes (``None`` where there is none)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# Share of available memory a run may plan to use by default: the rest is
# left to the other processes on the machine and to the libraries' own pools.
DEFAULT_MEMORY_FRACTION = 0.5


def default_max_bytes() -> int:
    """Half of the memory available now (4 GiB where that cannot be read)."""
    available = available_memory()
    return int(DEFAULT_MEMORY_FRACTION * available) if available else 4 * 2**30
