"""Whole-body motion: the `Motion` object, its files, and the head-centric and root-centric feature representations."""

from egotwin.motion.motion import MOTION_FPS, Motion, MotionFileError

__all__ = ["MOTION_FPS", "Motion", "MotionFileError"]
