"""`make bench`: run the benchmark suite (see benchmarks/README.md)."""

raise SystemExit("the benchmark suite is not written yet (issue: national scale, measured)")
