"""EgoTwin: one diffusion transformer that generates an egocentric video and the whole-body motion of its wearer."""

__version__ = "0.1.0"
