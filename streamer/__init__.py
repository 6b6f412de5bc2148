"""Streaming backbone: sources, camera workers, replay, event schemas and the bus (Kafka and in-memory)."""
