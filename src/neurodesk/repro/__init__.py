"""Reproducing and citing: lock files, sync, citations, SBOMs, re-runs and tested examples.

Each module has one job: ``reference`` (resolvable image references and where an image was
seen), ``lockfile`` (the versioned lock format), ``lock``/``sync`` (making and applying one),
``cite``, ``sbom``, ``rerun`` and ``examples``.
"""
