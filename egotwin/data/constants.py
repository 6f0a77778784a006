"""The numbers every part of EgoTwin agrees on: the clip's time layout and the generation modes.

This module imports nothing, so it sits at the bottom of the dependency graph: the clip format, the motion code,
the world generator, the pipeline and the demo all take these values from here (docs/design.md, "Time layout").
"""

VIDEO_FPS = 8
"""Video frames per second."""
MOTION_FPS = 16.0
"""Motion frames per second: two motion frames per video frame."""
CLIP_SECONDS = 5
"""Length of one clip."""
NUM_VIDEO_FRAMES = VIDEO_FPS * CLIP_SECONDS + 1
"""41: 5 s at 8 fps, frame 0 = the start frame."""
NUM_MOTION_FRAMES = int(MOTION_FPS) * CLIP_SECONDS + 1
"""81: 5 s at 16 fps, frame 0 = the initial pose."""
SPLITS = ("train", "val", "test")
"""The data splits a clip folder may hold."""
MODES = ("t2vm", "tm2v", "tv2m")
"""Generation modes: text -> video + motion, text + motion -> video, text + video -> motion."""
