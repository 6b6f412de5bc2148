"""What a dataset with ground truth holds: clips per concept and crime, episodes, boxes, concept transitions.

The transition matrix counts, over all cameras, how often clip i+1 has concept b
when clip i has concept a; its rows normalised are the one-step conditional
probabilities P(b | a) that the GMCP co-occurrence learns from (over a wider
window).  :func:`write_png` draws it as a heat map.
"""
from __future__ import annotations

import collections
from pathlib import Path

import numpy as np

from streamer.dataset import Dataset
from geo.vocabulary import CONCEPTS


def dataset_stats(root: str | Path) -> dict:
    """Counts over every annotated video of a dataset folder."""
    ds = Dataset(root)
    concepts: collections.Counter = collections.Counter()
    crimes: collections.Counter = collections.Counter()
    episodes: collections.Counter = collections.Counter()
    boxes: collections.Counter = collections.Counter()
    trans = np.zeros((len(CONCEPTS), len(CONCEPTS)), int)
    names: list[str] = []
    frames = 0
    for v in ds.videos:
        gt = ds.ground_truth(v)
        if gt is None:
            continue
        names = names or list(gt.classes)
        labels = [CONCEPTS.index(c.concept) for c in gt.clips]
        concepts.update(c.concept for c in gt.clips)
        crimes.update(x for c in gt.clips for x in c.crimes)
        episodes.update(e.kind for e in gt.episodes)
        for a, b in zip(labels, labels[1:]):
            trans[a, b] += 1
        for bs in gt.frames.values():
            boxes.update(names[int(b[0])] if int(b[0]) < len(names) else str(int(b[0])) for b in bs)
        frames += len(gt.frames)
    return dict(cameras=len(ds.videos), frames=frames, clips=sum(concepts.values()),
                concepts={c: concepts.get(c, 0) for c in CONCEPTS}, crimes=dict(crimes),
                episodes=dict(sorted(episodes.items())), boxes=dict(boxes), transitions=trans.tolist())


def format_stats(s: dict) -> str:
    lines = [f"{s['cameras']} cameras, {s['frames']} frames, {s['clips']} clips",
             "clips per concept: " + ", ".join(f"{k} {v}" for k, v in s["concepts"].items()),
             "clips per crime:   " + ", ".join(f"{k} {v}" for k, v in sorted(s["crimes"].items())),
             "episodes:          " + ", ".join(f"{k} {v}" for k, v in s["episodes"].items()),
             "boxes per class:   " + ", ".join(f"{k} {v}" for k, v in s["boxes"].items()),
             "next-clip transitions (row: clip i, column: clip i+1):"]
    short = [c[:8] for c in CONCEPTS]
    lines.append(" " * 17 + " ".join(f"{c:>8}" for c in short))
    for c, row in zip(CONCEPTS, s["transitions"]):
        lines.append(f"{c:>16} " + " ".join(f"{v:>8}" for v in row))
    return "\n".join(lines)


def write_png(s: dict, path: str | Path) -> Path:
    """Heat map of P(concept of clip i+1 | concept of clip i)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.asarray(s["transitions"], float)
    p = t / np.maximum(1, t.sum(axis=1, keepdims=True))
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(p, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(CONCEPTS)), CONCEPTS, rotation=60, ha="right")
    ax.set_yticks(range(len(CONCEPTS)), CONCEPTS)
    ax.set_xlabel("concept of clip i+1")
    ax.set_ylabel("concept of clip i")
    for i in range(len(CONCEPTS)):
        for j in range(len(CONCEPTS)):
            if t[i, j]:
                ax.text(j, i, f"{p[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if p[i, j] > 0.5 else "white")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(f"next-clip concept transitions ({s['clips']} clips)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
