"""Layer 1, the substrate: dtypes, array adapters, worker processes, the registry, sizes, records and results files.

Nothing here measures anything; every layer above may import it, it imports
only the contract (``softmax_bench.backend``, ``softmax_bench.errors``).
"""
