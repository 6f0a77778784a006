"""EgoWorld: the synthetic egocentric data engine (procedural apartments, a body acting in them, egocentric video
rendered from its head camera, captions), and the clip format it writes."""

from egotwin.data.clip_format import ClipFormatError, read_clip, read_metadata, write_clip
from egotwin.world.apartment import Apartment, generate_apartment
from egotwin.world.body_motion import BodyControls, synthesize_motion
from egotwin.world.episodes import Episode, plan_episode

__all__ = [
    "Apartment",
    "BodyControls",
    "ClipFormatError",
    "Episode",
    "generate_apartment",
    "plan_episode",
    "read_clip",
    "read_metadata",
    "synthesize_motion",
    "write_clip",
]
