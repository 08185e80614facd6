"""The command layer: one module per ``softmax-bench`` verb.

This is the only place where parsed arguments (``argparse.Namespace``) exist:
each verb module unpacks them and calls the engine with explicit values.
A verb module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int`` (the exit status). Adding a verb is one new module here
and one line in ``VERBS``.
"""

VERBS = (
    "list",
    "check",
    "run",
    "report",
    "compare",
)
