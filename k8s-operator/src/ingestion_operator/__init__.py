"""Kubernetes operator: each `IngestionSource` (observability.ingestion.dev/v1alpha1) becomes a
PrometheusRule and a Grafana dashboard ConfigMap rendered by `ingestion_observability.render`."""
