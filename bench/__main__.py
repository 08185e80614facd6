"""``python -m softmax_bench``: the console script by another name."""

import sys

from .cli import main

sys.exit(main())
