"""The one table of the skeleton EgoTwin uses: the 22 body joints of SMPL-X, in SMPL-X order.

Every other module names joints through this table, never through bare numbers.
"""

from __future__ import annotations

JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
)

# Parent of each joint in JOINT_NAMES; -1 marks the root. Identical to the first 22 entries of SMPL-X's kintree.
PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)

NUM_JOINTS = len(JOINT_NAMES)  # 22
NUM_BODY_JOINTS = NUM_JOINTS - 1  # 21 joints below the root: SMPL-X's `pose_body`
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINT_NAMES)}

PELVIS = JOINT_INDEX["pelvis"]
HEAD = JOINT_INDEX["head"]  # 15
LEFT_WRIST = JOINT_INDEX["left_wrist"]  # 20
RIGHT_WRIST = JOINT_INDEX["right_wrist"]  # 21
LEFT_FOOT = JOINT_INDEX["left_foot"]
RIGHT_FOOT = JOINT_INDEX["right_foot"]
LEFT_ANKLE = JOINT_INDEX["left_ankle"]
RIGHT_ANKLE = JOINT_INDEX["right_ankle"]
FOOT_JOINTS = (LEFT_ANKLE, RIGHT_ANKLE, LEFT_FOOT, RIGHT_FOOT)


def chain_to_root(joint: int) -> list[int]:
    """Joint indices from the root down to `joint`, both included (e.g. head: pelvis, spine1, spine2, spine3, neck,
    head)."""
    chain = []
    while joint != -1:
        chain.append(joint)
        joint = PARENTS[joint]
    return chain[::-1]


HEAD_CHAIN: tuple[int, ...] = tuple(chain_to_root(HEAD))
