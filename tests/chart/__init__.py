"""Tests of the Helm chart, the images, skaffold.yaml and the kind config (no Docker, no chart registry)."""
