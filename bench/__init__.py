"""`make bench`: throughput of the consumer, the producer (and the operator) against the physical limit.

Real local services (Kafka, VictoriaLogs taking Loki pushes, Prometheus, the consumer as a process);
`python -m bench.run --help`.
"""
