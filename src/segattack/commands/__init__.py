"""Subcommands of the ``segattack`` command line; one module each."""
