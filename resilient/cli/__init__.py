"""The ``python -m resilient`` subcommands beyond the demo."""
