"""Scene generator: surveillance-like street clips with agents acting out the indicator concepts.

``generate_dataset`` writes a replayable dataset (videos, per-clip concept labels,
per-frame boxes, manifest); ``export_yolo`` turns one into an ultralytics YOLO
dataset.  See :mod:`.agents` for the staged episodes and :mod:`.render` for drawing.
"""
from scenes.generate import SceneError, generate_dataset
from scenes.render import CLASSES

__all__ = ["CLASSES", "SceneError", "generate_dataset"]
