"""Deployment: verified artefacts, the model store behind `automl registry`, the HTTP server and its metrics."""
