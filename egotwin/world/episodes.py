"""Episodes: 5-second stories of a person in an apartment, composed from motion primitives, with their captions.

An episode starts from a pose in a room, looks at what the head camera sees at frame 0, and picks what to do from
that: walk to a piece of furniture in view, open a door in view, reach for or pick up an object in view, turn to
face something that is not yet in view, look around, walk, crouch. What is seen thus decides what is done, and what
is done changes what is seen (the door swings open, the view turns, hands come into view, an object is lifted).

Primitives write `BodyControls` frame ranges through `EpisodeBuilder`; `body_motion.synthesize_motion` turns the
controls into whole-body motion. Doors and carried objects are part of the episode's world state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from egotwin.data.constants import MOTION_FPS, NUM_MOTION_FRAMES
from egotwin.world.apartment import TABLE_KINDS, Apartment, Door, WorldObject
from egotwin.world.body_motion import BodyControls

NUM_FRAMES = NUM_MOTION_FRAMES
FPS = int(MOTION_FPS)
EYE_HEIGHT = 1.58
VIEW_HALF_ANGLE = math.radians(40)
WALK_SPEED = 1.0  # m/s cruising speed
TURN_SPEED_DEG = 120.0  # mean speed of a whole-body turn, deg/s (the default of `plan_episode`)
TURN_SPEED = math.radians(TURN_SPEED_DEG)  # rad/s


def wrap_angle(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def ease(n: int) -> np.ndarray:
    """(n,) smoothstep from just above 0 to 1 over n frames."""
    s = np.arange(1, n + 1) / max(n, 1)
    return s * s * (3 - 2 * s)


def bearing(origin: np.ndarray, heading: float, point: np.ndarray) -> float:
    """Angle of `point` (x, z) seen from `origin` relative to `heading`; positive = to the left."""
    d = point - origin
    return wrap_angle(math.atan2(d[0], d[1]) - heading)


def direction_words(angle: float) -> str:
    if angle > math.radians(12):
        return "on the left"
    if angle < -math.radians(12):
        return "on the right"
    return "ahead"


@dataclass
class Episode:
    """Everything an episode decides: controls for the body, world state over time and the words for it."""

    controls: BodyControls
    door_angles: np.ndarray
    """(T, num_doors) opening angle of every door of the apartment, radians."""
    caption: str
    actions: list[str]
    room: str
    target: dict | None = None
    """{'name', 'label', 'kind', 'direction'} of the thing acted on, if any."""
    attachments: list[tuple[str, int, int]] = field(default_factory=list)
    """(object name, hand side 0 = left / 1 = right, grasp frame): objects carried by a hand from that frame on."""


class EpisodeBuilder:
    """Appends primitives frame range by frame range; the state after the last primitive holds to the end."""

    def __init__(
        self, apartment: Apartment, position: tuple[float, float], heading: float, turn_speed: float = TURN_SPEED
    ) -> None:
        self.apartment = apartment
        self.turn_speed = turn_speed
        self.c = BodyControls.standing(NUM_FRAMES, position, heading)
        self.door_angles = np.zeros((NUM_FRAMES, len(apartment.doors)))
        self.k = 0

    @property
    def position(self) -> np.ndarray:
        return self.c.root_xz[self.k].copy()

    @property
    def heading(self) -> float:
        return float(self.c.heading[self.k])

    def _span(self, n: int) -> slice:
        n = max(0, min(n, NUM_FRAMES - 1 - self.k))
        return slice(self.k + 1, self.k + 1 + n)

    def _hold_from(self, k: int) -> None:
        for name in ("root_xz", "heading", "crouch", "lean", "head_yaw", "head_pitch"):
            array = getattr(self.c, name)
            array[k + 1 :] = array[k]

    def frames_left(self) -> int:
        return NUM_FRAMES - 1 - self.k

    def hold(self, seconds: float) -> None:
        self.k = min(NUM_FRAMES - 1, self.k + int(round(seconds * FPS)))

    def walk(self, distance: float, lateral_turn: float = 0.0) -> None:
        """Walk `distance` metres (negative: backwards) while turning by `lateral_turn` radians (a curve)."""
        n = max(8, int(round(abs(distance) / (0.75 * WALK_SPEED) * FPS)) + 6)
        span = self._span(n)
        s = ease(span.stop - span.start)
        start, h0 = self.position, self.heading
        heading = h0 + lateral_turn * s
        # integrate the path so that curved walks follow their heading
        ds = np.diff(np.concatenate(([0.0], s))) * distance
        xz = start + np.cumsum(np.stack((np.sin(heading) * ds, np.cos(heading) * ds), 1), axis=0)
        self.c.root_xz[span] = xz
        self.c.heading[span] = heading
        self.k = span.stop - 1
        self._hold_from(self.k)

    def turn(self, angle: float) -> None:
        n = max(6, int(round(abs(angle) / self.turn_speed * FPS)) + 3)
        span = self._span(n)
        self.c.heading[span] = self.heading + angle * ease(span.stop - span.start)
        self.k = span.stop - 1
        self._hold_from(self.k)

    def walk_to(self, point: np.ndarray, stop_distance: float, final_heading: float | None = None) -> None:
        """Turn towards `point` (x, z), walk until `stop_distance` from it, then face `final_heading` (or the point)."""
        offset = point - self.position
        dist = float(np.linalg.norm(offset))
        angle = bearing(self.position, self.heading, point)
        if abs(angle) > math.radians(8):
            self.turn(angle)
        if dist - stop_distance > 0.05:
            self.walk(dist - stop_distance)
        face = (
            final_heading if final_heading is not None else self.heading + bearing(self.position, self.heading, point)
        )
        if abs(wrap_angle(face - self.heading)) > math.radians(5):
            self.turn(wrap_angle(face - self.heading))

    def head(self, keys: list[tuple[float, float, float]]) -> None:
        """Head keyframes (seconds from now, yaw, pitch), eased between; the clock moves to the last key."""
        k0 = self.k
        yaw0, pitch0 = self.c.head_yaw[k0], self.c.head_pitch[k0]
        for seconds, yaw, pitch in keys:
            span = self._span(int(round(seconds * FPS)))
            s = ease(span.stop - span.start)
            self.c.head_yaw[span] = yaw0 + (yaw - yaw0) * s
            self.c.head_pitch[span] = pitch0 + (pitch - pitch0) * s
            yaw0, pitch0 = yaw, pitch
            self.k = span.stop - 1
            self._hold_from(self.k)

    def posture(self, seconds: float, crouch: float, lean: float, pitch: float | None = None) -> None:
        """Ease crouch depth, torso lean and (optionally) head pitch to new values."""
        span = self._span(int(round(seconds * FPS)))
        s = ease(span.stop - span.start)
        for name, value in (("crouch", crouch), ("lean", lean), ("head_pitch", pitch)):
            if value is not None:
                array = getattr(self.c, name)
                array[span] = array[self.k] + (value - array[self.k]) * s
        self.k = span.stop - 1
        self._hold_from(self.k)

    def hand(self, side: int, targets: np.ndarray, start: int, weights: np.ndarray) -> None:
        """Wrist targets (n, 3) and blend weights (n,) of one hand from frame `start` on (clipped to the clip)."""
        n = min(len(targets), NUM_FRAMES - start)
        self.c.hand_target[start : start + n, side] = targets[:n]
        self.c.hand_weight[start : start + n, side] = weights[:n]

    def look_at(self, point: np.ndarray, seconds: float = 0.5) -> None:
        """Turn the head towards a world point (3,)."""
        eye = np.array([self.position[0], EYE_HEIGHT - 0.4 * self.c.crouch[self.k], self.position[1]])
        d = point - eye
        yaw = float(np.clip(wrap_angle(math.atan2(d[0], d[2]) - self.heading), -1.0, 1.0))
        pitch = float(np.clip(math.atan2(-d[1], math.hypot(d[0], d[2])) - math.radians(10), -0.6, 0.9))
        self.head([(seconds, yaw, pitch)])


# ------------------------------------------------------------------------------------------------- captions
TEMPLATES: dict[str, list[str]] = {
    "walk_to": [
        "walk to the {t}",
        "go over to the {t} {dir}",
        "the person walks up to the {t}",
        "head towards the {t} in the {room}",
        "approach the {t} {dir}",
    ],
    "open_door": [
        "open the door {dir}",
        "walk to the door {dir} and push it open",
        "the person opens the {t}",
        "go to the door and open it",
        "push open the door {dir}",
    ],
    "reach": [
        "reach for the {t} with the {hand} hand",
        "stretch out the {hand} hand towards the {t}",
        "the person reaches for the {t} on the {support}",
        "walk to the {support} and reach for the {t}",
    ],
    "pick_up": [
        "pick up the {t}",
        "walk over and pick up the {t}",
        "the person picks up the {t} {dir}",
        "grab the {t} and lift it",
        "lift the {t} from the {support}",
    ],
    "turn_to": [
        "turn {side} to face the {t}",
        "turn around {side} towards the {t}",
        "the person turns {side} and looks at the {t}",
        "turn to the {side} until the {t} is in front",
    ],
    "look_around": [
        "look around the {room}",
        "glance left and right",
        "the person looks around the {room}",
        "look to both sides",
    ],
    "look_up": ["look up at the ceiling", "raise the head and look up", "the person looks upwards"],
    "look_down": [
        "look down at the floor",
        "lower the head and look at the floor",
        "the person looks down at the feet",
    ],
    "walk_forward": [
        "walk forward",
        "take a few steps forward",
        "walk straight ahead through the {room}",
        "the person walks forward",
    ],
    "walk_backward": ["take a few steps back", "walk backwards", "step back slowly", "the person backs up"],
    "walk_curve": [
        "walk in a curve to the {side}",
        "walk forward while turning {side}",
        "the person walks along a curve to the {side}",
    ],
    "turn": ["turn {side}", "turn to the {side}", "turn {side} in place", "the person turns to the {side}"],
    "crouch": ["crouch down and stand up again", "squat down, then get back up", "the person crouches and rises again"],
    "stand": ["stand still", "stand still in the {room}", "the person stands and waits"],
}


def caption_for(action: str, rng: np.random.Generator, **words: str) -> str:
    text = str(rng.choice(TEMPLATES[action])).format(**words)
    return " ".join(text.split())


# ------------------------------------------------------------------------------------------------ the planner
def _visible(
    apartment: Apartment, position: np.ndarray, heading: float, room: int
) -> tuple[list[WorldObject], list[Door]]:
    """Objects and doors of the current room whose centre is within the initial camera's horizontal view."""
    objects = [
        o
        for o in apartment.objects
        if o.room == room
        and abs(bearing(position, heading, o.position[[0, 2]])) < VIEW_HALF_ANGLE
        and 0.6 < np.linalg.norm(o.position[[0, 2]] - position) < 6.0
    ]
    doors = [
        d
        for d in apartment.doors
        if room in (d.room_a, d.room_b) and abs(bearing(position, heading, d.center[[0, 2]])) < VIEW_HALF_ANGLE
    ]
    return objects, doors


def _approach_point(obj: WorldObject, position: np.ndarray, gap: float) -> tuple[np.ndarray, float]:
    """A floor point `gap` metres in front of the object's footprint edge nearest to `position`, and the heading
    that faces the object from there."""
    x0, x1, z0, z1 = obj.footprint()
    cx, cz = np.clip(position[0], x0, x1), np.clip(position[1], z0, z1)
    candidates = []
    for nx, nz, px, pz in ((-1, 0, x0 - gap, cz), (1, 0, x1 + gap, cz), (0, -1, cx, z0 - gap), (0, 1, cx, z1 + gap)):
        candidates.append((np.hypot(px - position[0], pz - position[1]), np.array([px, pz]), math.atan2(-nx, -nz)))
    _, point, heading = min(candidates, key=lambda c: c[0])
    return point, heading


def plan_episode(
    apartment: Apartment, rng: np.random.Generator, max_tries: int = 60, turn_speed: float = TURN_SPEED
) -> Episode:
    """Sample a start pose and an episode that fits what is in view from it; whole-body turns take `turn_speed`
    (rad/s, mean over a turn)."""
    kinds = [
        "walk_to",
        "open_door",
        "reach",
        "pick_up",
        "turn_to",
        "look_around",
        "look_up_down",
        "walk",
        "turn",
        "crouch",
        "stand",
    ]
    weights = np.array([3, 3, 3, 3, 2, 1, 1, 2, 1, 1, 0.3])
    for _ in range(max_tries):
        kind = str(rng.choice(kinds, p=weights / weights.sum()))
        for _ in range(6):  # a few start poses per kind, so that the targeted kinds are not crowded out
            position, heading = _start_pose(apartment, rng, kind)
            if position is None:
                continue
            episode = _PLANNERS[kind](apartment, rng, position, heading, turn_speed)
            if episode is not None:
                return episode
    raise RuntimeError(f"could not plan an episode in apartment {apartment.seed} after {max_tries} tries")


def _start_pose(apartment: Apartment, rng: np.random.Generator, kind: str) -> tuple[np.ndarray | None, float]:
    """A free standing spot; for door episodes, one in front of a door (so that the door is in view)."""
    if kind == "open_door":
        if not apartment.doors:
            return None, 0.0
        door = apartment.doors[int(rng.integers(len(apartment.doors)))]
        side = -1.0 if door.push_room == door.room_a else 1.0  # x direction from the wall into the push room
        distance = float(rng.uniform(1.3, 2.6))
        lateral = float(rng.uniform(-0.8, 0.8))
        point = np.array([door.center[0] + side * distance, door.center[2] + lateral])
        heading = math.atan2(-side, 0.0) + float(rng.uniform(-0.35, 0.35))
        return (point, heading) if apartment.is_free(*point) else (None, 0.0)
    room = apartment.rooms[int(rng.integers(len(apartment.rooms)))]
    for _ in range(30):
        point = np.array([rng.uniform(room.x0 + 0.5, room.x1 - 0.5), rng.uniform(room.z0 + 0.5, room.z1 - 0.5)])
        # face roughly into the room, not into a nearby wall: a first frame that shows something
        to_centre = room.center[[0, 2]] - point
        heading = math.atan2(to_centre[0], to_centre[1]) + float(rng.uniform(-1.3, 1.3))
        if apartment.is_free(*point) and apartment.free_distance(point, heading, radius=0.1) > 1.2:
            return point, heading
    return None, 0.0


def _finish(
    b: EpisodeBuilder, caption: str, actions: list[str], target: dict | None = None, attachments: list | None = None
) -> Episode:
    room = b.apartment.room_at(*b.c.root_xz[0])
    return Episode(b.c, b.door_angles, caption, actions, room.name, target, attachments or [])


def _room_name(apartment: Apartment, position: np.ndarray) -> str:
    return apartment.room_at(*position).name


def _target(obj: WorldObject | Door, label: str, direction: str) -> dict:
    return {"name": obj.name, "label": label, "kind": getattr(obj, "kind", "door"), "direction": direction}


def _path_clear(apartment: Apartment, start: np.ndarray, goal: np.ndarray) -> bool:
    d = goal - start
    dist = float(np.linalg.norm(d))
    return dist < 0.05 or apartment.free_distance(start, math.atan2(d[0], d[1]), radius=0.25) >= dist - 0.05


def plan_walk_to(
    apartment: Apartment, rng: np.random.Generator, position: np.ndarray, heading: float, turn_speed: float = TURN_SPEED
) -> Episode | None:
    room = apartment.room_at(*position).index
    objects, _ = _visible(apartment, position, heading, room)
    candidates = [o for o in objects if o.position[1] < 0.01]
    rng.shuffle(candidates)
    for obj in candidates:
        goal, face = _approach_point(obj, position, 0.45)
        if not apartment.is_free(*goal, radius=0.25) or not _path_clear(apartment, position, goal):
            continue
        if np.linalg.norm(goal - position) > 3.5:
            continue
        b = EpisodeBuilder(apartment, tuple(position), heading, turn_speed)
        direction = direction_words(bearing(position, heading, obj.position[[0, 2]]))
        b.hold(float(rng.uniform(0.2, 0.6)))
        b.walk_to(goal, 0.0, face)
        b.look_at(obj.center, 0.6)
        words = dict(t=obj.label, dir=direction, room=_room_name(apartment, position))
        return _finish(b, caption_for("walk_to", rng, **words), ["walk_to"], _target(obj, obj.label, direction))
    return None


def plan_open_door(
    apartment: Apartment, rng: np.random.Generator, position: np.ndarray, heading: float, turn_speed: float = TURN_SPEED
) -> Episode | None:
    room = apartment.room_at(*position)
    if room is None:
        return None
    _, doors = _visible(apartment, position, heading, room.index)
    doors = [d for d in doors if d.push_room == room.index]
    if not doors:
        return None
    door = doors[int(rng.integers(len(doors)))]
    d_index = apartment.doors.index(door)
    side = -1.0 if door.push_room == door.room_a else 1.0
    face = math.atan2(-side, 0.0)
    handle = door.handle_position(0.0)
    # stand 0.42 m from the door, shifted from the door centre towards the handle so the hand can reach it
    stand = np.array([door.hinge[0] + side * 0.42, 0.5 * door.center[2] + 0.5 * handle[2]])
    if not _path_clear(apartment, position, stand) or np.linalg.norm(stand - position) > 3.2:
        return None
    direction = direction_words(bearing(position, heading, door.center[[0, 2]]))
    b = EpisodeBuilder(apartment, tuple(position), heading, turn_speed)
    b.hold(float(rng.uniform(0.1, 0.4)))
    b.walk_to(stand, 0.0, face)
    if b.frames_left() < 34:
        return None
    left = np.array([math.cos(face), -math.sin(face)])
    hand = 0 if float(np.dot(handle[[0, 2]] - stand, left)) > 0 else 1
    # reach the handle (0.6 s), push with the hand on it while stepping in (1 s), the door swings on (0.9 s)
    k_reach = b.k
    reach = 10
    push = 16
    swing = int(min(16, NUM_FRAMES - 1 - (k_reach + reach + push)))
    open_angle = float(rng.uniform(1.35, 1.7))
    contact_angle = 0.6
    angles = np.concatenate(
        (
            np.zeros(reach),
            contact_angle * ease(push),
            contact_angle + (open_angle - contact_angle) * np.sin(0.5 * math.pi * ease(max(swing, 1))),
        )
    )
    angles = np.concatenate((angles, np.full(max(0, NUM_FRAMES - k_reach - len(angles)), angles[-1])))[
        : NUM_FRAMES - k_reach
    ]
    b.door_angles[k_reach:, d_index] = angles
    handles = np.stack([door.handle_position(a) for a in angles])
    handles[:, 1] -= 0.02
    weights = np.concatenate((ease(reach), np.ones(push), 1 - ease(6), np.zeros(len(angles))))[: len(angles)]
    b.hand(hand, handles, k_reach, weights)
    b.look_at(handle, reach / FPS)
    b.walk(0.3)
    b.head([(0.5, 0.0, 0.05)])
    words = dict(t=f"{door.color} door", dir=direction)
    return _finish(
        b,
        caption_for("open_door", rng, **words),
        ["walk_to", "open_door"],
        _target(door, f"{door.color} door", direction),
    )


def _reach_common(
    apartment: Apartment,
    rng: np.random.Generator,
    position: np.ndarray,
    heading: float,
    pick: bool,
    turn_speed: float = TURN_SPEED,
) -> Episode | None:
    room = apartment.room_at(*position).index
    objects, _ = _visible(apartment, position, heading, room)
    if pick:
        candidates = [o for o in objects if o.movable]
    else:
        candidates = [o for o in objects if o.movable and o.position[1] > 0.01]
    rng.shuffle(candidates)
    for obj in candidates:
        support = next(
            (
                s
                for s in apartment.objects
                if s.position[1] < 0.01
                and s.room == obj.room
                and s.kind in TABLE_KINDS + ("cabinet",)
                and s.footprint()[0] <= obj.position[0] <= s.footprint()[1]
                and s.footprint()[2] <= obj.position[2] <= s.footprint()[3]
            ),
            None,
        )
        base = support if support is not None else obj
        goal, face = _approach_point(base, position, 0.28 if support is not None else 0.3)
        if (
            not apartment.is_free(*goal, radius=0.2)
            or not _path_clear(apartment, position, goal)
            or np.linalg.norm(goal - position) > 3.2
        ):
            continue
        # the object must be within arm's reach from the stand point (tables can be deep)
        if np.linalg.norm(obj.position[[0, 2]] - goal) > 0.75:
            continue
        direction = direction_words(bearing(position, heading, obj.position[[0, 2]]))
        b = EpisodeBuilder(apartment, tuple(position), heading, turn_speed)
        b.hold(float(rng.uniform(0.1, 0.4)))
        b.walk_to(goal, 0.0, face)
        if b.frames_left() < 30:
            continue
        left = np.array([math.cos(face), -math.sin(face)])
        hand = 0 if float(np.dot(obj.position[[0, 2]] - goal, left)) > 0 else 1
        low = obj.position[1] < 0.01 or obj.top < 0.6
        if low:
            b.posture(0.7, crouch=0.9, lean=0.55)
        else:
            b.posture(0.3, crouch=0.0, lean=0.2)
        b.look_at(obj.center, 0.3)
        k_reach = b.k
        grasp = obj.center + np.array([0.0, obj.size[1] * 0.2, 0.0])
        reach, hold = 12, 10
        lift = NUM_FRAMES - k_reach - reach - hold
        if pick and lift < 8:
            continue  # no time left to lift it
        two_hands = obj.kind == "box"
        if pick:
            chest_local = np.array([0.0, 1.1, 0.32])
            chest = np.array(
                [goal[0] + math.sin(face) * chest_local[2], chest_local[1], goal[1] + math.cos(face) * chest_local[2]]
            )
            path = np.concatenate(
                (np.repeat(grasp[None], reach + hold, 0), grasp + (chest - grasp) * ease(lift)[:, None])
            )
            weights = np.concatenate((ease(reach), np.ones(hold + lift)))
            b.hold((reach + hold) / FPS)
            b.posture(lift / FPS, crouch=0.0, lean=0.1)
        else:
            path = np.repeat(grasp[None], NUM_FRAMES - k_reach, 0)
            weights = np.concatenate((ease(reach), np.ones(hold + 8), 1 - ease(12), np.zeros(NUM_FRAMES)))
        lateral = np.array([math.cos(face), 0.0, -math.sin(face)])  # the person's left
        hands = (0, 1) if two_hands else (hand,)
        for h in hands:
            offset = (obj.size[0] / 2 + 0.03) * lateral * (1 if h == 0 else -1) if two_hands else 0.0
            b.hand(h, path + offset, k_reach, weights)
        attachments = [(obj.name, hands[0], k_reach + reach)] if pick else []
        support_name = support.label if support is not None else "floor"
        hand_word = "left" if hand == 0 else "right"
        words = dict(
            t=obj.label, dir=direction, hand=hand_word, support=support.kind if support is not None else "floor"
        )
        action = "pick_up" if pick else "reach"
        target = _target(obj, obj.label, direction)
        target["support"] = support_name
        target["hand"] = "both" if two_hands else hand_word
        return _finish(b, caption_for(action, rng, **words), ["walk_to", action], target, attachments)
    return None


def plan_reach(
    apartment: Apartment, rng: np.random.Generator, position: np.ndarray, heading: float, turn_speed: float = TURN_SPEED
) -> Episode | None:
    return _reach_common(apartment, rng, position, heading, pick=False, turn_speed=turn_speed)


def plan_pick_up(
    apartment: Apartment, rng: np.random.Generator, position: np.ndarray, heading: float, turn_speed: float = TURN_SPEED
) -> Episode | None:
    return _reach_common(apartment, rng, position, heading, pick=True, turn_speed=turn_speed)


def plan_turn_to(
    apartment: Apartment, rng: np.random.Generator, position: np.ndarray, heading: float, turn_speed: float = TURN_SPEED
) -> Episode | None:
    """Turn towards a piece of furniture that is not in view yet (it enters the view as the body turns)."""
    room = apartment.room_at(*position).index
    hidden = [
        o
        for o in apartment.objects
        if o.room == room
        and o.position[1] < 0.01
        and math.radians(60) < abs(bearing(position, heading, o.position[[0, 2]])) < math.radians(170)
    ]
    if not hidden:
        return None
    obj = hidden[int(rng.integers(len(hidden)))]
    angle = bearing(position, heading, obj.position[[0, 2]])
    b = EpisodeBuilder(apartment, tuple(position), heading, turn_speed)
    b.hold(float(rng.uniform(0.2, 0.8)))
    b.turn(angle)
    b.look_at(obj.center, 0.6)
    side = "left" if angle > 0 else "right"
    return _finish(b, caption_for("turn_to", rng, t=obj.label, side=side), ["turn_to"], _target(obj, obj.label, side))


def plan_look_around(
    apartment: Apartment, rng: np.random.Generator, position: np.ndarray, heading: float, turn_speed: float = TURN_SPEED
) -> Episode | None:
    b = EpisodeBuilder(apartment, tuple(position), heading, turn_speed)
    first = float(rng.choice([-1, 1]))
    amount = float(rng.uniform(0.7, 1.0))
    b.hold(float(rng.uniform(0.2, 0.6)))
    b.head([(1.1, first * amount, 0.0), (1.6, -first * amount, 0.05), (1.0, 0.0, 0.0)])
    return _finish(b, caption_for("look_around", rng, room=_room_name(apartment, position)), ["look_around"])


def plan_look_up_down(
    apartment: Apartment, rng: np.random.Generator, position: np.ndarray, heading: float, turn_speed: float = TURN_SPEED
) -> Episode | None:
    up = bool(rng.random() < 0.5)
    b = EpisodeBuilder(apartment, tuple(position), heading, turn_speed)
    b.hold(float(rng.uniform(0.3, 0.8)))
    pitch = -0.75 if up else 0.7
    b.head([(1.0, 0.0, pitch), (float(rng.uniform(0.8, 1.5)), 0.0, pitch), (1.0, 0.0, 0.0)])
    action = "look_up" if up else "look_down"
    return _finish(b, caption_for(action, rng), [action])


def plan_walk(
    apartment: Apartment, rng: np.random.Generator, position: np.ndarray, heading: float, turn_speed: float = TURN_SPEED
) -> Episode | None:
    mode = str(rng.choice(["walk_forward", "walk_backward", "walk_curve"]))
    b = EpisodeBuilder(apartment, tuple(position), heading, turn_speed)
    b.hold(float(rng.uniform(0.2, 0.6)))
    words = dict(room=_room_name(apartment, position))
    if mode == "walk_backward":
        room_left = apartment.free_distance(position, heading + math.pi) - 0.2
        if room_left < 0.8:
            return None
        b.walk(-min(room_left, float(rng.uniform(0.8, 1.6))))
    elif mode == "walk_forward":
        room_left = apartment.free_distance(position, heading) - 0.3
        if room_left < 1.2:
            return None
        b.walk(min(room_left, float(rng.uniform(1.5, 3.5))))
    else:
        turn = float(rng.choice([-1, 1])) * float(rng.uniform(0.8, 1.6))
        distance = float(rng.uniform(1.5, 2.8))
        # check a few points along the arc
        for s in (0.25, 0.5, 0.75, 1.0):
            h = heading + turn * s / 2
            p = position + distance * s * np.array([math.sin(h), math.cos(h)])
            if not apartment.is_free(*p, radius=0.3):
                return None
        b.walk(distance, lateral_turn=turn)
        words["side"] = "left" if turn > 0 else "right"
    return _finish(b, caption_for(mode, rng, **words), [mode])


def plan_turn(
    apartment: Apartment, rng: np.random.Generator, position: np.ndarray, heading: float, turn_speed: float = TURN_SPEED
) -> Episode | None:
    angle = float(rng.choice([-1, 1])) * float(rng.uniform(math.radians(60), math.radians(180)))
    if apartment.free_distance(position, heading + angle, radius=0.1) < 1.0:
        return None  # turning to face a wall shows nothing new
    b = EpisodeBuilder(apartment, tuple(position), heading, turn_speed)
    b.hold(float(rng.uniform(0.2, 0.8)))
    b.turn(angle)
    actions = ["turn"]
    side = "left" if angle > 0 else "right"
    caption = caption_for("turn", rng, side=side)
    free = apartment.free_distance(b.position, b.heading) - 0.3
    if free > 1.2 and b.frames_left() > 40:
        b.hold(0.2)
        b.walk(min(free, 2.0))
        actions.append("walk_forward")
        caption += " and " + caption_for("walk_forward", rng, room=_room_name(apartment, position))
    return _finish(b, caption, actions)


def plan_crouch(
    apartment: Apartment, rng: np.random.Generator, position: np.ndarray, heading: float, turn_speed: float = TURN_SPEED
) -> Episode | None:
    b = EpisodeBuilder(apartment, tuple(position), heading, turn_speed)
    b.hold(float(rng.uniform(0.3, 0.8)))
    b.posture(1.0, crouch=float(rng.uniform(0.7, 1.0)), lean=0.35, pitch=0.4)
    b.hold(float(rng.uniform(0.5, 1.2)))
    b.posture(1.1, crouch=0.0, lean=0.0, pitch=0.0)
    return _finish(b, caption_for("crouch", rng), ["crouch"])


def plan_stand(
    apartment: Apartment, rng: np.random.Generator, position: np.ndarray, heading: float, turn_speed: float = TURN_SPEED
) -> Episode | None:
    b = EpisodeBuilder(apartment, tuple(position), heading, turn_speed)
    b.head([(2.0, float(rng.uniform(-0.2, 0.2)), float(rng.uniform(-0.1, 0.15)))])
    return _finish(b, caption_for("stand", rng, room=_room_name(apartment, position)), ["stand"])


_PLANNERS = {
    "walk_to": plan_walk_to,
    "open_door": plan_open_door,
    "reach": plan_reach,
    "pick_up": plan_pick_up,
    "turn_to": plan_turn_to,
    "look_around": plan_look_around,
    "look_up_down": plan_look_up_down,
    "walk": plan_walk,
    "turn": plan_turn,
    "crouch": plan_crouch,
    "stand": plan_stand,
}
