"""The ``convnp`` command line: one module per subcommand, registered in :mod:`convnp.cli.main`."""
