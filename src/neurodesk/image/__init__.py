"""Image formats: OCI layouts and archives, safe layer extraction, sandbox directories."""
