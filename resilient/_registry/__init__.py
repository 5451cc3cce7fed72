"""The registry of named policies (``resilient.registry`` is the process's one)."""
