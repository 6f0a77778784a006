"""Whole-body motion: the `Motion` object, its files, and the head-centric and root-centric feature representations."""

from egotwin.motion.bvh import load_bvh, save_bvh
from egotwin.motion.head_centric import HeadCentricRepresentation
from egotwin.motion.motion import MOTION_FPS, Motion, MotionFileError
from egotwin.motion.normalization import FeatureStats
from egotwin.motion.representation import get_representation
from egotwin.motion.root_centric import RootCentricRepresentation

__all__ = [
    "MOTION_FPS",
    "FeatureStats",
    "HeadCentricRepresentation",
    "Motion",
    "MotionFileError",
    "RootCentricRepresentation",
    "get_representation",
    "load_bvh",
    "save_bvh",
]
