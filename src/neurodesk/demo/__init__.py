"""The end-to-end demo: recipe → image → store → wrapper → dcm2niix → NIfTI check."""
