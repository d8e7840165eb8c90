"""The catalog of tools: apps.json, log.txt, categories, search."""
