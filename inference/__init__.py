"""ANFIS neuro-fuzzy crime-imminence scoring, as a library and as a Kafka consumer service."""
