"""Generated ground truth for training and testing the crime models without video.

A stand-in for the ground truth the scene generator writes (per clip: concept
label and staged crimes), produced directly as :class:`ClipRecord` lists so the
crime models, the scoring service and the benchmarks can be exercised in
seconds.  It is also what the bundled default models were trained on
(``scripts/train_default_models.sh``); models for real deployments are trained
on recorded or rendered datasets with ``imminence anfis train DATASET``.

The story it tells, per cell: clips of ``clip_s`` seconds are mostly ``normal``,
with background indicator noise.  Crimes of each type happen as a Poisson
process whose rate depends on the cell (a few hot cells) and the hour (more at
night).  Before a crime, for a few minutes, its precursor concepts (loitering,
sneaking, camera tampering, ...) show up more often; while it is staged (10 to
30 s) the clips carry its action concepts (violent movement, seizures, lethal
objects, ...) and the crime type.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Optional, Sequence

import numpy as np

from geo.vocabulary import CONCEPTS, CRIME_TYPES, check_concepts
from inference.crime_models import ClipRecord
from streamer.schemas import ConceptResult, DetectionSummary, IndicatorEvent

#: crime -> (precursor concepts, action concepts): this generator's story, not the study's table
#: (geo.vocabulary.CRIME_CONCEPTS); names are the vocabulary's, checked below, in CRIME_TYPES order.
SCENARIOS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "robbery": (("loitering", "sneaking"), ("violent_movement", "forceful_seizure", "lethal_object", "item_seizure")),
    "burglary": (("loitering", "camera_tampering"), ("sneaking", "item_seizure", "suspicious_exit")),
    "larceny": (("loitering", "traffic_violation"), ("item_seizure", "sneaking", "suspicious_exit")),
    "battery": (("loitering", "traffic_violation"), ("violent_movement", "lethal_object", "forceful_seizure")),
}
if tuple(SCENARIOS) != CRIME_TYPES:
    raise ImportError(f"inference.synthetic: SCENARIOS covers {list(SCENARIOS)}, not the crime types {list(CRIME_TYPES)}")
for _crime, (_pre, _act) in SCENARIOS.items():
    check_concepts(_pre + _act, f"inference.synthetic.SCENARIOS[{_crime!r}]")


def generate_records(cells: int = 12, hours: float = 3.0, *, clip_s: float = 2.0, seed: int = 0,
                     start: Optional[datetime] = None, crimes_per_hour: float = 0.8,
                     noise: float = 0.02, cameras_per_cell: int = 1) -> list[ClipRecord]:
    """Clip records for ``cells`` cells r0c0, r0c1, ... over ``hours`` hours from ``start`` (UTC)."""
    rng = np.random.default_rng(seed)
    start = start or datetime(2026, 5, 1, 18, 0, tzinfo=timezone.utc)
    n = int(round(hours * 3600 / clip_s))
    hour = (start.hour + start.minute / 60 + np.arange(n) * clip_s / 3600) % 24
    night = 1.0 + 0.8 * np.cos(2 * np.pi * (hour - 23) / 24)  # peak at 23:00
    out: list[ClipRecord] = []
    ncols = max(1, int(np.ceil(np.sqrt(cells))))
    for cell in range(cells):
        cell_id = f"r{cell // ncols}c{cell % ncols}"
        hot = rng.choice([0.3, 1.0, 3.0], p=[0.4, 0.4, 0.2])  # cold, average and hot cells
        for cam in range(cameras_per_cell):
            labels = np.zeros(n, dtype=int)
            noisy = rng.random(n) < noise
            labels[noisy] = rng.integers(1, len(CONCEPTS), noisy.sum())
            crimes: list[set[str]] = [set() for _ in range(n)]
            for crime, (pre, act) in SCENARIOS.items():
                lam = crimes_per_hour / 4 * hot * night * clip_s / 3600
                starts = np.nonzero(rng.random(n) < lam)[0]
                for t0 in starts:
                    lead = int(rng.integers(60, 180) / clip_s)
                    for t in range(max(0, t0 - lead), t0):
                        if rng.random() < 0.25:
                            labels[t] = CONCEPTS.index(rng.choice(pre))
                    dur = int(rng.integers(10, 31) / clip_s)
                    for t in range(t0, min(n, t0 + dur)):
                        labels[t] = CONCEPTS.index(rng.choice(act)) if rng.random() < 0.8 else labels[t]
                        crimes[t].add(crime)
            cam_id = f"cam-{cell_id}-{cam}"
            for t in range(n):
                out.append(ClipRecord(cell_id, start + timedelta(seconds=t * clip_s), CONCEPTS[labels[t]],
                                      tuple(sorted(crimes[t])), cam_id))
    return out


def to_events(records: Sequence[ClipRecord], *, clip_s: float = 2.0, replay: bool = True) -> list[IndicatorEvent]:
    """IndicatorEvents as camera workers would publish them for these clips (ids ``camera:clip_index``)."""
    out = []
    index: dict[str, int] = {}
    first: dict[str, datetime] = {}
    for r in records:
        cam = r.camera_id or f"cam-{r.cell_id}"
        i = index.get(cam, 0)
        index[cam] = i + 1
        t0 = first.setdefault(cam, r.clip_start)
        s = (r.clip_start - t0).total_seconds()
        out.append(IndicatorEvent(
            event_id=f"{cam}:{i}", camera_id=cam, cell_id=r.cell_id, clip_index=i,
            clip_start=r.clip_start, clip_end=r.clip_start + timedelta(seconds=clip_s),
            stream_start_s=s, stream_end_s=s + clip_s, frame_first=int(s * 5), frame_last=int((s + clip_s) * 5) - 1,
            captured_at=r.clip_start + timedelta(seconds=clip_s),
            detections=DetectionSummary(frames=int(clip_s * 5), counts={"person": 1.0}),
            concept=ConceptResult(label=r.concept, score=0.9, method="gmcp"), replay=replay))
    return out
