"""Nymeria (Project Aria video + XSens motion + narrations) -> EgoTwin clips: `python -m egotwin.data.nymeria`.

    files.py      readers for xdata.npz, xdata_smpl_neutral.npz, the MPS trajectory, narrations, metadata.json
    retarget.py   XSens 23 segments -> our 22 joints, calibrated on the sequence's T-pose
    alignment.py  the TIME_CODE <-> device clock, trajectory interpolation, head -> device calibration, per-clip fit
    aria.py       the thin layer over projectaria_tools (extra 'nymeria'): VRS frames, clock, fisheye -> pinhole
    smpl.py       rest joints of NymeriaPlus SMPL fits (--body smpl)
    convert.py    the converter: clips, captions, filters, splits, resumable runs, report.json
    fixtures.py   writes a sequence folder in Nymeria's layout from a known motion (for tests)

docs/nymeria.md explains the steps and what has been verified where.
"""

from egotwin.data.nymeria.convert import NymeriaConfig, convert, convert_sequence
from egotwin.data.nymeria.files import NymeriaFormatError

__all__ = ["NymeriaConfig", "NymeriaFormatError", "convert", "convert_sequence"]
