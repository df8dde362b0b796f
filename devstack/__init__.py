"""Real services as local processes (Kafka, Prometheus, Loki, kube-apiserver) for tests and `make demo`."""
