"""Grid geometry: the bottom package every stage may import (cells, bounds, projections).

It imports no stage of ours, so no arrow runs back up from ``streamer`` to ``mapping``.
"""
