"""EgoWorld without rendering: apartments, body kinematics, episodes and their causal structure."""

import math

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation

from egotwin.body.builtin import builtin_rest_joints
from egotwin.body.skeleton import FOOT_JOINTS, JOINT_INDEX, LEFT_ANKLE, PARENTS, RIGHT_ANKLE, RIGHT_WRIST
from egotwin.world.apartment import Apartment, Room, generate_apartment
from egotwin.world.body_motion import BodyControls, rotation_between, synthesize_motion, two_bone_ik
from egotwin.world.episodes import (
    FPS,
    NUM_FRAMES,
    TURN_SPEED,
    VIEW_HALF_ANGLE,
    EpisodeBuilder,
    _start_pose,
    bearing,
    plan_episode,
    plan_open_door,
    plan_turn,
)

REST = builtin_rest_joints()


def test_apartment_is_a_function_of_its_seed():
    a, b, c = generate_apartment(7), generate_apartment(7), generate_apartment(8)
    assert np.array_equal(a.shell.vertices, b.shell.vertices)
    assert [o.name for o in a.objects] == [o.name for o in b.objects]
    assert all(np.array_equal(x.position, y.position) for x, y in zip(a.objects, b.objects))
    assert not (len(a.shell.vertices) == len(c.shell.vertices) and np.allclose(a.shell.vertices, c.shell.vertices))


@pytest.mark.parametrize("seed", range(6))
def test_apartment_layout_is_consistent(seed):
    apt = generate_apartment(seed)
    assert 2 <= len(apt.rooms) <= 3
    for room in apt.rooms:
        labels = [o.label for o in apt.objects if o.room == room.index]
        assert len(labels) == len(set(labels)), "objects of a room must be nameable by colour + kind"
        assert len(labels) >= 3
    for obj in apt.objects:
        room = apt.rooms[obj.room]
        x0, x1, z0, z1 = obj.footprint()
        assert room.x0 - 1e-6 <= x0 and x1 <= room.x1 + 1e-6 and room.z0 - 1e-6 <= z0 and z1 <= room.z1 + 1e-6
    for door in apt.doors:
        # the handle is on the side of the room the door is pushed from, and opening swings it into the other room
        push_room, into_room = apt.rooms[door.push_room], apt.rooms[door.opens_into]
        handle = door.handle_position(0.0)
        assert push_room.contains(handle[0], handle[2])
        free_edge = door.panel_pose(1.5)[:3, :3] @ np.array([door.width, 1.0, 0.0]) + door.hinge
        assert into_room.contains(free_edge[0], free_edge[2])


def test_free_distance_known_answer():
    room = Room(0, "study", 0.0, 4.0, 0.0, 3.0, 2.5)
    walls = [(-0.05, 0.05, 0.0, 3.0), (3.95, 4.05, 0.0, 3.0), (0.0, 4.0, -0.05, 0.05), (0.0, 4.0, 2.95, 3.05)]
    apt = Apartment(0, [room], [], [], trimesh.creation.box(), walls=walls)
    start = np.array([1.0, 1.5])
    assert apt.free_distance(start, math.pi / 2, radius=0.3) == pytest.approx(4.0 - 0.05 - 0.3 - 1.0)  # towards +x
    assert apt.free_distance(start, -math.pi / 2, radius=0.3) == pytest.approx(1.0 - 0.05 - 0.3)
    assert apt.free_distance(start, 0.0, radius=0.0) == pytest.approx(3.0 - 0.05 - 1.5)  # towards +z
    diagonal = apt.free_distance(start, math.atan2(1, 1), radius=0.0)  # hits the z = 2.95 wall first
    assert diagonal == pytest.approx((2.95 - 1.5) * math.sqrt(2))


def test_rotation_between_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(20, 3)), rng.normal(size=(20, 3))
    ours = rotation_between(torch.as_tensor(a), torch.as_tensor(b)).numpy()
    for i in range(20):
        ref = Rotation.align_vectors(b[i][None], a[i][None])[0].as_matrix()
        np.testing.assert_allclose(ours[i], ref, atol=1e-8)


def test_two_bone_ik_reaches_and_keeps_bone_lengths():
    root = torch.zeros(50, 3, dtype=torch.float64)
    rng = np.random.default_rng(1)
    direction = torch.as_tensor(rng.normal(size=(50, 3)))
    direction = direction / direction.norm(dim=-1, keepdim=True)
    dist = torch.as_tensor(rng.uniform(0.1, 1.0, size=(50, 1)))
    target = direction * dist
    pole = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(50, 3)
    middle, end = two_bone_ik(root, target, pole, 0.3, 0.25)
    np.testing.assert_allclose(middle.norm(dim=-1), 0.3, atol=1e-9)
    np.testing.assert_allclose((end - middle).norm(dim=-1), 0.25, atol=1e-9)
    reachable = (dist[:, 0] > 0.051) & (dist[:, 0] < 0.549)
    np.testing.assert_allclose(end[reachable], target[reachable], atol=1e-9)
    assert ((end[~reachable] - target[~reachable]).norm(dim=-1) > 0).all()  # out of reach: pulled in
    # the middle joint bends off the root-end line towards the pole side
    u = end / end.norm(dim=-1, keepdim=True)
    bend = middle - (middle * u).sum(-1, keepdim=True) * u
    assert ((bend * pole).sum(-1) >= -1e-9).all()


def _walk_controls(distance: float, turn: float = 0.0) -> BodyControls:
    c = BodyControls.standing(NUM_FRAMES, (0.0, 0.0), 0.0)
    s = np.clip((np.arange(NUM_FRAMES) - 8) / 60, 0, 1)
    s = s * s * (3 - 2 * s)
    heading = turn * s
    step = np.diff(np.concatenate(([0.0], s))) * distance
    c.root_xz = np.cumsum(np.stack((np.sin(heading) * step, np.cos(heading) * step), 1), 0)
    c.heading = heading
    return c


@pytest.mark.parametrize("turn", [0.0, 1.2])
def test_gait_plants_feet_and_moves_the_body(turn):
    motion = synthesize_motion(_walk_controls(2.5, turn), REST)
    assert motion.num_frames == NUM_FRAMES
    joints = motion.joints()
    # bones keep their rest lengths (FK of a rigid skeleton)
    for j, p in enumerate(PARENTS[1:], 1):
        np.testing.assert_allclose((joints[:, j] - joints[:, p]).norm(dim=-1), (REST[j] - REST[p]).norm(), atol=1e-5)
    pelvis_path = (joints[-1, 0] - joints[0, 0])[[0, 2]].norm()
    assert pelvis_path > 2.0
    for ankle in (LEFT_ANKLE, RIGHT_ANKLE):
        height = joints[:, ankle, 1]
        speed = (joints[1:, ankle] - joints[:-1, ankle])[:, [0, 2]].norm(dim=-1) * 16
        planted = (height[1:] < REST[ankle, 1] + 0.012) & (height[:-1] < REST[ankle, 1] + 0.012)
        assert planted.sum() > 30, "feet must spend most of the time on the ground"
        assert speed[planted].max() < 0.25, f"planted foot slides at {speed[planted].max():.2f} m/s"
        assert height.max() > REST[ankle, 1] + 0.04, "swinging feet lift off"
    assert (joints[:, list(FOOT_JOINTS), 1] > -0.02).all(), "feet stay above the floor"


def test_reaching_hand_reaches_target():
    c = BodyControls.standing(NUM_FRAMES, (0.0, 0.0), 0.0)
    target = np.array([-0.25, 1.1, 0.45])
    c.hand_target[:, 1] = target
    c.hand_weight[40:, 1] = 1.0
    joints = synthesize_motion(c, REST).joints()
    assert np.linalg.norm(joints[60, RIGHT_WRIST].numpy() - target) < 0.01
    assert np.linalg.norm(joints[0, RIGHT_WRIST].numpy() - target) > 0.3


def test_head_turns_by_the_commanded_yaw():
    c = BodyControls.standing(NUM_FRAMES, (0.0, 0.0), 0.3)
    c.head_yaw[:] = 0.6
    rot, _ = synthesize_motion(c, REST).head_pose()
    forward = rot[:, :, 2]
    yaw = torch.atan2(forward[:, 0], forward[:, 2])
    np.testing.assert_allclose(yaw, 0.9, atol=1e-5)


def test_episodes_are_deterministic():
    apt = generate_apartment(3)
    a = plan_episode(apt, np.random.default_rng(5))
    b = plan_episode(apt, np.random.default_rng(5))
    assert a.caption == b.caption and a.actions == b.actions
    assert np.array_equal(a.controls.root_xz, b.controls.root_xz)
    assert np.array_equal(a.door_angles, b.door_angles)


@pytest.mark.parametrize("speed_deg", [45.0, 120.0])
def test_turns_take_the_time_their_speed_gives(speed_deg):
    speed = math.radians(speed_deg)
    b = EpisodeBuilder(generate_apartment(3), (0.0, 0.0), 0.2, turn_speed=speed)
    b.turn(math.radians(90))
    heading = b.c.heading
    moving = np.flatnonzero(np.abs(np.diff(heading)) > 1e-9)
    # the turn ends at the commanded heading and lasts angle / speed (+3 frames of easing), then holds
    assert heading[-1] == pytest.approx(0.2 + math.radians(90))
    assert len(moving) == round(math.radians(90) / speed * FPS) + 3
    assert np.all(np.diff(heading) >= 0)


def test_turn_speed_changes_how_long_a_planned_turn_takes():
    """The same apartment, start and rng: the same turn, in the same words, reached later at half the speed."""
    apt = generate_apartment(3)
    position, heading = _start_pose(apt, np.random.default_rng(1), "turn")
    seed = next(s for s in range(100) if plan_turn(apt, np.random.default_rng(s), position, heading) is not None)
    fast = plan_turn(apt, np.random.default_rng(seed), position, heading)
    slow = plan_turn(apt, np.random.default_rng(seed), position, heading, turn_speed=TURN_SPEED / 2)
    assert slow.caption.split(" and ")[0] == fast.caption.split(" and ")[0]
    # the frame each turn ends (the walk that may follow keeps the heading)
    ends = [int(np.argmax(np.abs(e.controls.heading - e.controls.heading[-1]) < 1e-9)) for e in (fast, slow)]
    assert slow.controls.heading[-1] == pytest.approx(fast.controls.heading[-1])
    assert abs(fast.controls.heading[-1] - heading) > math.radians(59)
    assert ends[1] - ends[0] == pytest.approx(abs(fast.controls.heading[-1] - heading) / TURN_SPEED * FPS, abs=1.5)


def test_episode_targets_are_in_the_initial_view():
    """Causal interplay, seen -> done: every targeted walk / reach / pick-up / door acts on what frame 0 shows."""
    kinds = set()
    for seed in range(8):
        apt = generate_apartment(seed)
        rng = np.random.default_rng(seed)
        for _ in range(6):
            ep = plan_episode(apt, rng)
            assert ep.caption and ep.controls.root_xz.shape == (NUM_FRAMES, 2)
            if ep.target is None or ep.actions[0] == "turn_to":
                continue
            kinds.add(ep.actions[-1])
            name = ep.target["name"]
            thing = next((o for o in apt.objects if o.name == name), None) or next(
                d for d in apt.doors if d.name == name
            )
            point = thing.position[[0, 2]] if hasattr(thing, "position") else thing.center[[0, 2]]
            assert abs(bearing(ep.controls.root_xz[0], ep.controls.heading[0], point)) < VIEW_HALF_ANGLE
            assert ep.target["label"].split()[-1] in ep.caption or "door" in ep.caption
    assert {"walk_to", "reach", "pick_up"} & kinds


def test_open_door_episode_opens_the_door_with_the_hand_on_the_handle():
    """Causal interplay, done -> seen: the door swings open because the hand pushes its handle."""
    found = 0
    for seed in range(20):
        apt = generate_apartment(seed)
        if not apt.doors:
            continue
        rng = np.random.default_rng(seed)
        for _ in range(10):
            position, heading = _start_pose(apt, rng, "open_door")
            episode = None if position is None else plan_open_door(apt, rng, position, heading)
            if episode is None:
                continue
            found += 1
            d = int(np.argmax(episode.door_angles[-1]))
            door = apt.doors[d]
            assert episode.door_angles[0, d] == 0 and episode.door_angles[-1, d] > 1.2, "the door ends open"
            assert "door" in episode.caption
            motion = synthesize_motion(episode.controls, REST)
            joints = motion.joints().double().numpy()
            moving = np.nonzero((episode.door_angles[:, d] > 0.05) & (episode.door_angles[:, d] < 0.5))[0]
            side = int(np.argmax(episode.controls.hand_weight[moving[0]]))
            wrist = joints[moving, (JOINT_INDEX["left_wrist"], RIGHT_WRIST)[side]]
            handles = np.stack([door.handle_position(a) for a in episode.door_angles[moving, d]])
            assert np.linalg.norm(wrist - handles, axis=1).max() < 0.08, "the hand follows the handle while pushing"
            break
        if found >= 3:
            break
    assert found >= 3
