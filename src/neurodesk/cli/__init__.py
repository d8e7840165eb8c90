"""The ``neurodesk`` / ``nd`` command line: one module per command group, thin on purpose."""
