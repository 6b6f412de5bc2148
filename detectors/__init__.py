"""Detectors: frames and clips in; detections, tracks, concept scores and GMCP labels out.

Knows nothing of Kafka, topics or the other stages.
"""
