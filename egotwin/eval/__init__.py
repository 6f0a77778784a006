"""Evaluation of EgoTwin generations (design "Metrics"): video (I-FID, FVD, CLIP-SIM's replacement), motion (M-FID,
R-Precision, MM-Dist) and video-motion consistency (TransErr, RotErr, HandScore), and on EgoWorld the exact
viewpoint alignment (`egotwin.eval.alignment`, docs/alignment.md). `python -m egotwin.eval --help`."""

from egotwin.eval.consistency import clip_consistency, viewpoint_alignment

__all__ = ["clip_consistency", "viewpoint_alignment"]
