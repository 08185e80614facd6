"""Layer 2, the engine: exact references, the case catalog, checks, the clock, timing units and their plan.

Data flows inputs -> adapter -> backend -> check or clock -> record; this
layer writes records and never reads them back for reporting.
"""
