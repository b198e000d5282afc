"""The stages of one run: prepare -> search -> final -> outputs, each with a typed result."""
