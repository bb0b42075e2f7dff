"""Benchmarks: our numbers against reference engines measured in the same run."""
