"""`ingestion-intake`: runs reported over HTTP (OpenLineage RunEvents, connector records) published to Kafka.

payload.py reads request bodies into items, publish.py waits for Kafka's acknowledgement of each, server.py
serves the endpoints, cli.py the flags.
"""
