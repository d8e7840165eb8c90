"""Batches: one containerised command over many inputs, run locally or as SLURM job arrays.

Data flow: inputs (a list, a glob, a BIDS dataset) → placeholders expanded per input → a batch
directory (definition, per-task logs and provenance records) → an executor (local pool or SLURM
array) that runs ``run_task`` for each task index.
"""
