"""Benchmarks of rnnkit against idiomatic PyTorch and DyNet (DyNet paper Table 2, issue 5)."""
