"""The body: skeleton table, rotations, forward kinematics, body models and the head camera."""

from egotwin.body.body_model import SMPLX_DIR_ENV, BodyModel, builtin_body_model, load_body_model
from egotwin.body.builtin import builtin_rest_joints
from egotwin.body.head_camera import HeadCameraRig
from egotwin.body.smplx_body import SMPLXFileError

__all__ = [
    "SMPLX_DIR_ENV",
    "BodyModel",
    "HeadCameraRig",
    "SMPLXFileError",
    "builtin_body_model",
    "builtin_rest_joints",
    "load_body_model",
]
