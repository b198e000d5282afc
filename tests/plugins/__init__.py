"""Test-only engine plugins (loaded through AUTOML_PLUGINS, see fault_families.py)."""
