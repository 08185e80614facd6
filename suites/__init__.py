"""asv benchmark suites (benchmark_dir); not installed, run by asv against each commit's build."""
