"""A multi-user Neurodesk on JupyterHub: settings, deployment files, spawners, status."""
