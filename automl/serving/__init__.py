"""Deployment: verified artefacts, the model registry, the HTTP server and its metrics."""
