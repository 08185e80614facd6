"""Layer 4, reading records back: runs, tables, comparisons, plots and the page."""
