"""Grid geometry and the shared vocabularies: the bottom package every stage may import.

``geo.grid``: cells, bounds, projections.  ``geo.vocabulary``: the one source of the
concept names, crime types and the study's crime -> concept table.
It imports no stage of ours, so no arrow runs back up from ``streamer`` to ``mapping``.
"""
