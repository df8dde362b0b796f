"""Observability for data-ingestion jobs."""
