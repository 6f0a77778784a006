"""The thin layer over projectaria_tools (the optional extra `nymeria`): the head recording's VRS (RGB frames, the
TIME_CODE <-> device clock, the factory calibration) and the RGB camera's fisheye -> upright pinhole chain.

Pinhole chain (projectaria_tools' own recipe): Fisheye624 `camera-rgb` -> a linear (pinhole) calibration of the same
size and focal length with `get_linear_camera_calibration`, the image resampled with `distort_by_calibration`; then
the upright view: the image turned 90 degrees clockwise (`np.rot90(k=3)`) and the calibration with
`rotate_camera_calib_cw90deg`; then an area resize to `size` x `size`. projectaria_tools puts integer pixel
coordinates at pixel centres, the clip format at pixel corners: `cx_clip = (cx + 0.5) * scale`.

`distort_by_calibration` is run once per camera, on images of the pixel coordinates, to get the resampling map; every
frame is then one `cv2.remap` with that map (the same pixels up to rounding, ten times faster).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

RGB_STREAM = "214-1"
RGB_LABEL = "camera-rgb"
EXTRA_MESSAGE = (
    "reading Nymeria's VRS recordings needs projectaria-tools, the optional extra 'nymeria': "
    "pip install 'egotwin[nymeria]' (or pip install projectaria-tools==2.3.0); "
    "--motion_only with --timecode_offset_us needs neither VRS nor the extra"
)


def require_projectaria():
    """The projectaria_tools modules (calibration, data_provider, sensor_data, stream_id, sophus), or ImportError
    naming the extra."""
    try:
        from projectaria_tools.core import calibration, data_provider, sensor_data, sophus, stream_id
    except ImportError as error:
        raise ImportError(EXTRA_MESSAGE) from error
    return calibration, data_provider, sensor_data, stream_id, sophus


def se3_matrix(transform) -> np.ndarray:
    """A projectaria `SE3` -> (4, 4) float64."""
    return np.asarray(transform.to_matrix(), dtype=np.float64).reshape(4, 4)


@dataclass
class PinholeCamera:
    """The upright pinhole view of the RGB camera at `size` x `size` pixels."""

    intrinsics: np.ndarray
    """(3, 3) K, clip-format convention (pixel (0, 0) = top-left corner of the top-left pixel)."""
    device_to_camera: np.ndarray
    """(4, 4) T_Device_Camera of the upright pinhole frame (OpenCV axes): camera_to_world = T_world_device @ this."""
    size: int
    map_x: np.ndarray
    """(H, W) float32: the fisheye image column each pixel of the full-resolution linear image samples (-1: none)."""
    map_y: np.ndarray


def pinhole_camera(fisheye, size: int) -> PinholeCamera:
    """The upright pinhole camera (`size` square) for a projectaria Fisheye624 `CameraCalibration`."""
    calibration = require_projectaria()[0]
    width, height = (int(v) for v in fisheye.get_image_size())
    focal = float(fisheye.get_focal_lengths()[0])
    linear = calibration.get_linear_camera_calibration(
        width, height, focal, "camera-rgb-pinhole", fisheye.get_transform_device_camera()
    )
    upright = calibration.rotate_camera_calib_cw90deg(linear)
    up_width, up_height = (int(v) for v in upright.get_image_size())
    if up_width != up_height:
        raise ValueError(
            f"the RGB camera is {up_width}x{up_height}; the converter expects a square sensor (Aria: 1408)"
        )
    scale = size / up_width
    fx, fy = (float(v) for v in upright.get_focal_lengths())
    cx, cy = (float(v) for v in upright.get_principal_point())
    intrinsics = np.array([[fx * scale, 0, (cx + 0.5) * scale], [0, fy * scale, (cy + 0.5) * scale], [0, 0, 1.0]])
    # the resampling map: distort_by_calibration of the coordinate ramps (bilinear on a ramp is exact)
    columns, rows = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    map_x, map_y, seen = (
        calibration.distort_by_calibration(a, linear, fisheye) for a in (columns, rows, np.ones_like(rows))
    )
    map_x, map_y = (np.where(seen > 0.5, m, -1).astype(np.float32) for m in (map_x, map_y))
    return PinholeCamera(intrinsics, se3_matrix(upright.get_transform_device_camera()), size, map_x, map_y)


def undistort(camera: PinholeCamera, image: np.ndarray) -> np.ndarray:
    """A raw (stored, sideways) fisheye RGB image (H, W, 3) uint8 -> the upright pinhole image (size, size, 3)."""
    if image.shape[:2] != camera.map_x.shape:
        raise ValueError(
            f"RGB image is {image.shape[1]}x{image.shape[0]}, its calibration {camera.map_x.shape[1]}x"
            f"{camera.map_x.shape[0]}"
        )
    linear = cv2.remap(image, camera.map_x, camera.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    upright = np.ascontiguousarray(np.rot90(linear, k=3))
    return cv2.resize(upright, (camera.size, camera.size), interpolation=cv2.INTER_AREA)


class HeadRecording:
    """The head Aria VRS (`data.vrs`, or `motion.vrs` for the clock alone) through projectaria_tools."""

    def __init__(self, path: str | Path):
        _, data_provider, sensor_data, stream_id, _ = require_projectaria()
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: missing")
        self.provider = data_provider.create_vrs_data_provider(str(self.path))
        if self.provider is None:
            raise ValueError(f"{self.path}: projectaria_tools cannot open this VRS file")
        self._sensor_data = sensor_data
        self._rgb = stream_id.StreamId(RGB_STREAM)

    def timecode_to_device_us(self, timecode_us: np.ndarray) -> np.ndarray:
        """TIME_CODE microseconds (K,) -> head device microseconds (K,), through the VRS time-sync records."""
        convert = self.provider.convert_from_timecode_to_device_time_ns
        return np.array([convert(int(t) * 1000) / 1000.0 for t in np.asarray(timecode_us).reshape(-1)])

    def rgb_rate_hz(self) -> float:
        return float(self.provider.get_nominal_rate_hz(self._rgb))

    def rgb_calibration(self):
        """The factory calibration of `camera-rgb` (Fisheye624)."""
        calibration = self.provider.get_device_calibration().get_camera_calib(RGB_LABEL)
        if calibration is None:
            raise ValueError(f"{self.path}: no '{RGB_LABEL}' calibration (is this the head recording's data.vrs?)")
        return calibration

    def rgb_frame(self, device_time_us: float) -> tuple[np.ndarray, float]:
        """The RGB frame captured closest to a device time: (H, W, 3) uint8 and its own capture time (us)."""
        sensor_data = self._sensor_data
        image, record = self.provider.get_image_data_by_time_ns(
            self._rgb,
            round(device_time_us * 1000),
            sensor_data.TimeDomain.DEVICE_TIME,
            sensor_data.TimeQueryOptions.CLOSEST,
        )
        array = image.to_numpy_array()
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=-1)
        return array, record.capture_timestamp_ns / 1000.0
