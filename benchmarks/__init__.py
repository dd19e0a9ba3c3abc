"""Side-by-side benchmarks of the churn service, run by ``scripts/benchmark``; not part of the tests."""
