"""Crime-indicator concepts per clip: features from tracks, pairs, motion and tampering signs
(:mod:`.features`), one binary classifier per concept saved as plain JSON (:mod:`.classifiers`)."""
from detectors.concepts.classifiers import ConceptModel, ConceptModelError, train_concept_model
from detectors.concepts.features import FEATURE_NAMES, FEATURE_VERSION, ClipFeatures

__all__ = ["ConceptModel", "ConceptModelError", "train_concept_model", "FEATURE_NAMES", "FEATURE_VERSION",
           "ClipFeatures"]
