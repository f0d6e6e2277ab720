"""Course utilities: data, plots, reference implementations, checks, lab generator."""
