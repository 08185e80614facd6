"""The ``softmax-bench`` console script: ``softmax-bench``, ``python -m softmax_bench`` or ``python -m softmax_bench.cli``.

The parsing and dispatch live in ``commands`` (one module per verb).
"""

from __future__ import annotations

import sys

from .commands import PROG, build_parser, main

__all__ = ["PROG", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
