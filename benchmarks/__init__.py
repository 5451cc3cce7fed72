"""Side-by-side benchmarks of resilient and its peers: ``python -m benchmarks``."""
