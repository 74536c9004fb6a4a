"""Subcommands of the ``rbm-analytics`` CLI, one module each with ``register(subparsers)``."""
