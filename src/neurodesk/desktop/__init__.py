"""The browser environment: JupyterLab, the tools panel, container kernels, a VNC desktop."""
