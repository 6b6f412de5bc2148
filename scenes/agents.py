"""Agents and episodes: who moves where, frame by frame, to act out each concept.

A camera's :class:`Stage` holds scripted actors (people, bags, weapons,
vehicles), tampering effects and door openings over the whole recording, plus
the ground-truth concept of every clip.  Everything is decided up front from
one random generator, so the same seed gives the same scene.

**Episodes.**  Incidents are staged as *episodes*: a fixed sequence of phases,
each a whole number of clips with one concept label, so every clip has exactly
one dominant concept.  Clips outside episodes are ``normal`` (passers-by,
traffic, people using the door).  The templates encode the temporal structure
the GMCP stage learns as co-occurrence (concept of clip i -> concept of clip j
nearby)::

    larceny         loitering(2-3) -> item_seizure(1-2) -> [suspicious_exit(1), p=0.8]
    robbery_armed   loitering(1-2) -> lethal_object(1-2) -> forceful_seizure(1-2) -> suspicious_exit(1)
    robbery_snatch  [loitering(1-2), p=0.8] -> forceful_seizure(1-2) -> suspicious_exit(1)
    burglary        [camera_tampering(1), p=0.4] -> sneaking(2-3) -> normal(1-2, inside) -> suspicious_exit(1-2)
    battery         [loitering(1), p=0.5] -> violent_movement(2-3) -> [suspicious_exit(1), p=0.6]
    traffic         traffic_violation(1-2)            (speeding, wrong way, not stopping at the crossing,
                                                       a cyclist against the traffic or fast on the sidewalk)
    tampering       camera_tampering(1-2)             (blackout, cover, blur, brightness jump, camera shift)
    loiter          loitering(3-5)                    (nobody is harmed: loitering does not always lead to crime)

``crimes`` of a clip is the crime type the episode it belongs to stages
(robbery, burglary, larceny, battery), for every clip of the episode, including
its precursors (loitering, tampering) and the getaway; clips outside episodes,
and traffic/tampering/loiter episodes, stage none.  Episodes are separated by
one to three normal clips; the episode kinds cycle through random permutations,
handed out to the cameras in turn, so every kind appears on some camera as soon
as the recording holds eight episodes or more (4 cameras x 2 minutes hold ~35).

Actors walk in during the clip(s) before their episode and may still be
walking off in the clip after it; those clips stay ``normal``, since walking
past is what normal clips are made of.  Passers-by, cyclists, joggers, pairs,
people using the door or the crossing, and lawful traffic fill every clip, so a
concept is never signalled by the mere presence of people, bags or vehicles.

**Motion.**  Speeds are in body heights per second (walk ~0.8, run ~2, loiter
~0.15, sneak ~0.25) and converted to pixels with the perspective height at the
actor's row, so near people move faster on screen than far ones.  The gait phase
advances with the distance travelled, so legs swing in step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from geo.vocabulary import check_concepts, check_crime_types
from scenes.render import BAGS, CARS, Layout, Look, Pose, Tamper

WALK, RUN, LOITER, SNEAK = 0.8, 2.0, 0.15, 0.25  # body heights per second
MODES = ("walk", "run", "stand", "loiter", "crouch", "reach", "fight", "struggle", "point", "handsup", "ride")
STRIDE = {"walk": 0.85, "loiter": 0.5, "run": 1.3, "crouch": 0.35, "ride": 1.2}  # body heights per gait (pedal) cycle


@dataclass
class _Seg:
    f0: int
    f1: int
    x0: float
    y0: float
    x1: float
    y1: float
    mode: str
    facing: Optional[int]
    lookback: bool


class Person:
    """A scripted person: a chain of segments from its first frame to its last."""

    def __init__(self, stage: "Stage", tid: int, f: int, x: float, y: float, look: Look, facing: int) -> None:
        self.stage, self.tid, self.look = stage, tid, look
        self.f, self.x, self.y, self.facing = int(f), float(x), float(y), int(facing)
        self.start = int(f)
        self.segs: list[_Seg] = []
        self._arrays: Optional[dict] = None
        self.rng = np.random.default_rng(stage.rng.integers(2**32))

    # -- scripting --------------------------------------------------------------------
    def _add(self, f1: int, x: float, y: float, mode: str, facing: Optional[int] = None, lookback: bool = False) -> "Person":
        f1 = int(f1)
        if f1 <= self.f:
            self.x, self.y = float(x), float(y)  # no time left: jump (rare, keeps schedules consistent)
            return self
        self.segs.append(_Seg(self.f, f1, self.x, self.y, float(x), float(y), mode, facing, lookback))
        self.f, self.x, self.y = f1, float(x), float(y)
        return self

    def frames_for(self, x: float, y: float, speed: float) -> int:
        """Frames needed to reach (x, y) at ``speed`` body heights per second."""
        h = self.stage.layout.person_height((self.y + y) / 2) * self.look.scale
        dist = math.hypot(x - self.x, y - self.y)
        return max(1, math.ceil(dist / (speed * h / self.stage.fps)))

    def go(self, x: float, y: float, speed: float = WALK, mode: str = "walk", lookback: bool = False) -> "Person":
        return self._add(self.f + self.frames_for(x, y, speed), x, y, mode, lookback=lookback)

    def go_by(self, f1: int, x: float, y: float, mode: str = "walk", facing: Optional[int] = None) -> "Person":
        return self._add(f1, x, y, mode, facing)

    def stay(self, f1: int, mode: str = "stand", facing: Optional[int] = None) -> "Person":
        return self._add(f1, self.x, self.y, mode, facing)

    def loiter(self, f1: int, radius: float) -> "Person":
        """Dwell around the current spot: slow short walks, pauses, turns."""
        cx, cy = self.x, self.y
        while self.f < f1 - 2:
            if self.rng.random() < 0.4:
                self.stay(min(f1, self.f + int(self.rng.integers(3, 9))), "stand",
                          facing=int(self.rng.choice([-1, 1])))
                continue
            tx = cx + self.rng.uniform(-radius, radius)
            ty = float(np.clip(cy + self.rng.uniform(-0.25, 0.25) * radius, *self.stage.band_of(cy)))
            full = self.frames_for(tx, ty, LOITER * self.rng.uniform(0.8, 1.5))
            n = min(f1 - self.f, full)
            self._add(self.f + n, self.x + (tx - self.x) * n / full, self.y + (ty - self.y) * n / full, "loiter")
        return self.stay(f1, "stand")

    def leave(self, side: Optional[int] = None, speed: float = WALK, mode: str = "walk", lookback: bool = False) -> "Person":
        """Walk (or run) off the nearer edge, or the edge on ``side``."""
        W = self.stage.layout.width
        if side is None:
            side = -1 if self.x < W / 2 else 1
        h = self.stage.layout.person_height(self.y)
        return self.go(-0.4 * h if side < 0 else W + 0.4 * h, self.y, speed, mode, lookback)

    @property
    def end(self) -> int:
        return self.f

    # -- frames -----------------------------------------------------------------------
    def compile(self) -> dict:
        """Per-frame arrays (position, mode, facing, gait phase, look-back, limb jitter) of the whole script."""
        n = max(1, self.f - self.start)
        x, y = np.zeros(n), np.zeros(n)
        mode = np.zeros(n, np.int8)
        facing = np.full(n, self.facing, np.int8)
        lookback = np.zeros(n)
        fac = self.facing
        for s in self.segs:
            k = np.arange(s.f0, s.f1) - self.start
            t = (k + self.start - s.f0 + 1) / (s.f1 - s.f0)
            x[k] = s.x0 + (s.x1 - s.x0) * t
            y[k] = s.y0 + (s.y1 - s.y0) * t
            mode[k] = MODES.index(s.mode)
            if s.facing is not None:
                fac = s.facing
            elif abs(s.x1 - s.x0) > 1.0:
                fac = 1 if s.x1 > s.x0 else -1
            facing[k] = fac
            if s.lookback:  # glance back for 3 of every 8 frames
                lookback[k] = ((k + self.tid) % 8 < 3).astype(float)
        if not self.segs:
            x[:], y[:] = self.x, self.y
        # gait phase grows with distance walked, at the stride of the current mode
        h = self.stage.layout.person_height(y) * self.look.scale
        step = np.hypot(np.diff(x, prepend=x[0]), np.diff(y, prepend=y[0]))
        stride = np.array([STRIDE.get(MODES[m], 0.85) for m in mode]) * h
        phase = np.cumsum(2 * math.pi * step / stride) + self.rng.uniform(0, 2 * math.pi)
        raw = self.rng.uniform(-1, 1, (n, 5))  # erratic limbs for fights and struggles
        smooth = np.sin(np.arange(n)[:, None] * 0.15 + self.rng.uniform(0, 6.28, 5))
        calm = np.isin(mode, [MODES.index(m) for m in ("fight", "struggle")], invert=True)
        jitter = np.where(calm[:, None], smooth, raw)
        self._arrays = dict(x=x, y=y, mode=mode, facing=facing, phase=phase, lookback=lookback, jitter=jitter)
        return self._arrays

    def pose(self, f: int) -> Optional[Pose]:
        if f < self.start or f >= self.f:
            return None
        a = self._arrays or self.compile()
        k = f - self.start
        return Pose(float(a["x"][k]), float(a["y"][k]), int(a["facing"][k]), float(a["phase"][k]),
                    MODES[a["mode"][k]], tuple(float(v) for v in a["jitter"][k]), float(a["lookback"][k]))


@dataclass
class Bag:
    """A bag: on the ground, held by a person's hand, or pulled between two people."""

    tid: int
    colour: tuple[int, int, int]
    spans: list[tuple] = field(default_factory=list)  # (f0, f1, "ground", x, y) | (f0, f1, "held", person, hand) | (f0, f1, "tug", p1, p2)

    def add(self, f0: int, f1: int, how: str, a, b) -> "Bag":
        if f1 > f0:
            self.spans.append((int(f0), int(f1), how, a, b))
        return self

    def at(self, f: int) -> Optional[tuple]:
        for s in self.spans:
            if s[0] <= f < s[1]:
                return s
        return None


@dataclass
class Weapon:
    tid: int
    kind: str  # knife | pistol
    holder: Person
    f0: int
    f1: int


@dataclass
class Bicycle:
    """A bicycle under a rider (a :class:`Person` in ``ride`` mode); a ``vehicle`` box of its own."""

    tid: int
    rider: Person
    colour: tuple[int, int, int]


@dataclass
class Vehicle:
    tid: int
    kind: str  # car | van
    colour: tuple[int, int, int]
    f0: int
    f1: int
    x0: float
    x1: float
    y: float

    def x_at(self, f: int) -> Optional[float]:
        if f < self.f0 or f >= self.f1:
            return None
        return self.x0 + (self.x1 - self.x0) * (f - self.f0) / max(1, self.f1 - self.f0 - 1)


@dataclass
class Episode:
    kind: str
    crimes: tuple[str, ...]
    phases: list[tuple[str, str, int, int]]  # (phase name, concept, first clip, end clip)
    actors: list[int] = field(default_factory=list)


class Stage:
    """One camera's recording under construction."""

    def __init__(self, layout: Layout, fps: float, n_frames: int, clip_frames: int, rng: np.random.Generator) -> None:
        self.layout, self.fps, self.n_frames, self.clip_frames, self.rng = layout, fps, n_frames, clip_frames, rng
        self.n_clips = n_frames // clip_frames
        self.persons: list[Person] = []
        self.bags: list[Bag] = []
        self.weapons: list[Weapon] = []
        self.vehicles: list[Vehicle] = []
        self.bicycles: list[Bicycle] = []
        self.tampers: list[Tamper] = []
        self.door_open = np.zeros(n_frames, bool)
        self.lane_busy: list[list[tuple[int, int]]] = [[], []]
        self.labels = ["normal"] * self.n_clips
        self.crimes: list[list[str]] = [[] for _ in range(self.n_clips)]
        self.episodes: list[Episode] = []
        self.crowd = 1.0  # multiplies the passer-by rates (a busier or quieter street)
        self._next = 1

    def new_id(self) -> int:
        self._next += 1
        return self._next - 1

    # -- geometry helpers -------------------------------------------------------------
    def band_of(self, y: float) -> tuple[float, float]:
        far, near = self.layout.far_band, self.layout.near_band
        return far if y < self.layout.road_top else near

    def pick_band(self, p_near: float = 0.7) -> tuple[float, float]:
        return self.layout.near_band if self.rng.random() < p_near else self.layout.far_band

    def h(self, y: float) -> float:
        return self.layout.person_height(y)

    def edge_x(self, side: int, y: float) -> float:
        return -0.4 * self.h(y) if side < 0 else self.layout.width + 0.4 * self.h(y)

    # -- actors -------------------------------------------------------------------------
    def person(self, f: int, x: float, y: float, facing: int = 1, look: Optional[Look] = None,
               tid: Optional[int] = None) -> Person:
        p = Person(self, tid if tid is not None else self.new_id(), f, x, y, look or Look.random(self.rng), facing)
        self.persons.append(p)
        return p

    def walk_in(self, arrive: int, x: float, y: float, side: int, speed: float = WALK, look: Optional[Look] = None) -> Person:
        """A person who enters from the edge on ``side`` and reaches (x, y) at frame ``arrive``."""
        x0 = self.edge_x(side, y)
        probe = Person(self, 0, 0, x0, y, look or Look.random(self.rng), -side)
        n = probe.frames_for(x, y, speed)
        p = self.person(arrive - n, x0, y, -side, probe.look)
        return p.go_by(arrive, x, y, "walk")

    def bag(self, colour=None) -> Bag:
        b = Bag(self.new_id(), colour or BAGS[self.rng.integers(len(BAGS))])
        self.bags.append(b)
        return b

    def open_door(self, f0: int, f1: int) -> None:
        self.door_open[max(0, f0):max(0, min(self.n_frames, f1))] = True

    def vehicle(self, f0: int, lane: int, direction: int, speed: float, kind: Optional[str] = None) -> Vehicle:
        """A vehicle entering at frame f0 in ``lane`` (0 upper, 1 lower), ``speed`` px/frame."""
        y = self.layout.lanes[lane]
        kind = kind or ("van" if self.rng.random() < 0.2 else "car")
        half = (1.25 if kind == "van" else 1.1) * self.h(y)
        W = self.layout.width
        x0, x1 = (-half, W + half) if direction > 0 else (W + half, -half)
        n = max(2, math.ceil(abs(x1 - x0) / speed))
        v = Vehicle(self.new_id(), kind, CARS[self.rng.integers(len(CARS))], f0, f0 + n, x0, x1, y)
        self.vehicles.append(v)
        self.lane_busy[lane].append((f0, f0 + n))
        return v

    def cyclist(self, f0: int, lane: int, direction: int, speed: float, on_sidewalk: bool = False) -> Person:
        """A person riding a bicycle across the frame from frame f0 at ``speed`` body heights per second."""
        L = self.layout
        y = (L.near_band[0] + L.near_band[1]) / 2 if on_sidewalk else L.lanes[lane] - 0.05 * (L.road_bottom - L.road_top)
        p = self.person(f0, self.edge_x(-direction, y), y, facing=direction)
        p.leave(direction, speed, "ride")
        self.bicycles.append(Bicycle(self.new_id(), p, CARS[self.rng.integers(len(CARS))]))
        if not on_sidewalk:
            self.lane_busy[lane].append((f0, p.end))
        return p

    def lane_free(self, lane: int, f0: int, f1: int, pad: int = 0) -> bool:
        return all(f1 + pad <= a or f0 - pad >= b for a, b in self.lane_busy[lane])

    def label(self, kind: str, crimes: tuple[str, ...], phases: list[tuple[str, str, int, int]]) -> Episode:
        ep = Episode(kind, crimes, phases)
        for _, concept, c0, c1 in phases:
            for c in range(c0, c1):
                self.labels[c] = concept
        for c in range(phases[0][2], phases[-1][3]):
            self.crimes[c] = list(crimes)
        self.episodes.append(ep)
        return ep


# -- episodes -------------------------------------------------------------------------------
Phases = dict[str, tuple[int, int]]  # phase name -> frames [f0, f1)


def _spot(S: Stage, band: tuple[float, float], lo: float, hi: float) -> tuple[float, float]:
    return S.rng.uniform(lo, hi) * S.layout.width, S.rng.uniform(*band)


def ep_larceny(S: Stage, P: Phases) -> list[int]:
    """A thief loiters near someone who put a bag down, takes it, walks off, then runs."""
    rng, W = S.rng, S.layout.width
    (l0, l1), (s0, s1) = P["loitering"], P["item_seizure"]
    band = S.pick_band()
    side = int(rng.choice([-1, 1]))  # the thief's side
    xv, yv = _spot(S, band, 0.35, 0.65)
    hv = S.h(yv)
    victim = S.walk_in(l0 + int(rng.uniform(0, 0.3) * (l1 - l0)), xv, yv, -side)
    bag = S.bag()
    put = victim.end + 3
    bag.add(victim.start, put, "held", victim, "back")
    victim.stay(put, "reach", facing=side)
    xb, yb = xv + side * 0.22 * hv, yv + 2
    victim.stay(s1 + int(rng.integers(5, 25)), "stand", facing=-side)  # looks away, phone in hand
    victim.leave(-side)
    xt = xb + side * rng.uniform(0.12, 0.2) * W
    yt = float(np.clip(yv + rng.uniform(-8, 8), *band))
    thief = S.walk_in(l0, xt, yt, side)
    thief.loiter(s0, 0.35 * S.h(yt))
    grab = s0 + int(0.5 * (s1 - s0))
    thief.go_by(grab, xb + side * 0.12 * S.h(yb), yb, "walk")
    thief.stay(grab + 3, "reach", facing=-side)
    bag.add(put, grab + 3, "ground", xb, yb)
    thief.go_by(s1, thief.x + side * 0.08 * W, thief.y, "walk")
    if "suspicious_exit" in P:
        thief.leave(side, RUN, "run", lookback=True)
    else:  # a cool thief just walks on
        thief.leave(side, WALK)
    bag.add(grab + 3, thief.end, "held", thief, "front")
    return [victim.tid, thief.tid, bag.tid]


def ep_robbery(S: Stage, P: Phases, armed: bool) -> list[int]:
    """A robber waits, confronts a passer-by (with a knife or pistol when armed), wrestles the bag away and flees."""
    rng = S.rng
    s0, s1 = P["forceful_seizure"]
    e1 = P["suspicious_exit"][1] if "suspicious_exit" in P else s1 + S.clip_frames
    c0 = P["lethal_object"][0] if armed else s0
    band = S.pick_band(0.8)
    side = int(rng.choice([-1, 1]))
    xt, yt = _spot(S, band, 0.2, 0.4) if side < 0 else _spot(S, band, 0.6, 0.8)
    h = S.h(yt)
    l0 = P["loitering"][0] if "loitering" in P else c0 - S.clip_frames // 2
    robber = S.walk_in(l0, xt, yt, side)
    robber.loiter(c0 - 2, 0.3 * h)
    xm = robber.x - side * 0.5 * h  # where the victim is met
    victim = S.walk_in(c0, xm, robber.y, -side)
    bag = S.bag()
    if armed:
        a0, a1 = P["lethal_object"]
        robber.go_by(c0 + 3, xm + side * 0.42 * h, robber.y, "walk", facing=-side)
        robber.stay(a1, "point", facing=-side)
        victim.stay(c0 + 4, "stand", facing=side).stay(a1, "handsup", facing=side)
        S.weapons.append(Weapon(S.new_id(), str(rng.choice(["knife", "pistol"])), robber, a0, s1))
        reach = s0 + 2
        robber.go_by(reach, xm + side * 0.35 * h, robber.y, "struggle", facing=-side)
    else:
        reach = s0 + max(3, (s1 - s0) // 5)
        robber.go_by(reach, xm + side * 0.35 * h, robber.y, "run", facing=-side)
    victim.stay(reach, "stand", facing=side)
    tug_end = s0 + int(0.7 * (s1 - s0))
    # the struggle: both sway in small fast steps, the bag pulled between them
    f = reach
    while f < tug_end:
        g = min(tug_end, f + 2)
        dx = rng.uniform(-0.08, 0.08) * h
        robber.go_by(g, xm + side * 0.35 * h + dx, robber.y, "struggle", facing=-side)
        victim.go_by(g, xm + dx * 0.8, victim.y, "struggle", facing=side)
        f = g
    robber.go_by(s1, robber.x + side * 0.25 * h, robber.y, "run")
    robber.leave(side, RUN, "run", lookback=True)
    victim.stay(e1, "handsup" if rng.random() < 0.4 else "stand", facing=side)
    victim.leave(-side, WALK * 0.8)
    bag.add(victim.start, reach, "held", victim, "back")
    bag.add(reach, tug_end, "tug", victim, robber)
    bag.add(tug_end, robber.end, "held", robber, "back")
    return [robber.tid, victim.tid, bag.tid]


def ep_burglary(S: Stage, P: Phases) -> list[int]:
    """A burglar creeps along the facade to the door, goes in, and later runs out with loot."""
    rng, L = S.rng, S.layout
    (k0, k1), (x0, _) = P["sneaking"], P["suspicious_exit"]
    dx, dy = L.door_point
    side = -1 if dx > L.width / 2 else 1  # approach from the side with more room
    if rng.random() < 0.3:
        side = -side
    y = L.far_band[0] + 2
    hs = S.h(y)
    dist = min(SNEAK * hs / S.fps * (k1 - k0 - 6), abs(S.edge_x(side, y) - dx) - 5)
    xs = dx + side * dist
    burglar = S.walk_in(k0, xs, y, side)
    burglar.go_by(k1 - 4, dx + side * 0.15 * hs, y, "crouch", facing=-side)
    burglar.go_by(k1, dx, dy, "walk")
    S.open_door(k1 - 5, k1 + 2)
    S.open_door(x0, x0 + 7)
    out = S.person(x0 + 1, dx, dy, facing=-side, look=burglar.look, tid=burglar.tid)
    exit_side = int(rng.choice([-1, 1]))
    out.go(dx + exit_side * 0.4 * hs, L.far_band[0] + 0.6 * (L.far_band[1] - L.far_band[0]), RUN, "run", lookback=True)
    out.leave(exit_side, RUN, "run", lookback=True)
    loot = S.bag()
    loot.add(out.start, out.end, "held", out, "back")
    return [burglar.tid, loot.tid]


def ep_battery(S: Stage, P: Phases) -> list[int]:
    """Two people meet and fight (erratic fast limbs, shoves); one of them then runs off."""
    rng = S.rng
    v0, v1 = P["violent_movement"]
    band = S.pick_band(0.8)
    xa, ya = _spot(S, band, 0.3, 0.7)
    h = S.h(ya)
    side = int(rng.choice([-1, 1]))  # B's side
    if "loitering" in P:
        a = S.walk_in(P["loitering"][0], xa, ya, -side)
        a.loiter(v0 - 3, 0.3 * h)
    else:
        a = S.walk_in(v0 - 3, xa, ya, -side)
    xa = a.x
    b = S.walk_in(v0 - 1, xa + side * 0.45 * h, ya + rng.uniform(-3, 3), side)
    a.stay(v0, "stand", facing=side)
    b.stay(v0, "stand", facing=-side)
    f = v0
    while f < v1:
        g = min(v1, f + int(rng.integers(2, 4)))
        sep = rng.uniform(0.28, 0.5) * h
        shove = rng.random() < 0.2
        if shove:  # one shoves the other a step back
            sep += 0.3 * h
        mid = xa + side * 0.22 * h + rng.uniform(-0.1, 0.1) * h
        a.go_by(g, mid - side * sep / 2, ya + rng.uniform(-2, 2), "fight", facing=side)
        b.go_by(g, mid + side * sep / 2, b.y, "fight", facing=-side)
        f = g
    if "suspicious_exit" in P:
        b.leave(side, RUN, "run", lookback=True)
        a.stay(P["suspicious_exit"][1] + 2, "stand", facing=side)
        a.leave(-side, WALK)
    else:
        b.leave(side, WALK * 1.1)
        a.leave(-side, WALK)
    return [a.tid, b.tid]


def ep_traffic(S: Stage, P: Phases) -> list[int]:
    """A vehicle speeding, driving the wrong way, or not stopping for someone on the crossing."""
    rng, L = S.rng, S.layout
    t0, t1 = P["traffic_violation"]
    variant = str(rng.choice(["speeding", "wrong_way", "crossing", "bike_wrong_way", "bike_sidewalk"]))
    lane = int(rng.integers(2))
    lawful = -1 if lane == 0 else 1
    W = L.width
    ids = []
    if variant == "speeding":
        n = max(1, (t1 - t0) // S.clip_frames)
        for i in range(n):
            f = t0 + i * S.clip_frames + int(rng.integers(0, 4))
            ids.append(S.vehicle(f, lane, lawful, rng.uniform(0.12, 0.16) * W).tid)
    elif variant == "wrong_way":
        speed = max(0.035 * W, (W + 2.5 * S.h(L.lanes[lane])) / max(4, (t1 - t0 - 2)))
        ids.append(S.vehicle(t0 + 1, lane, -lawful, speed).tid)
    elif variant.startswith("bike"):  # a cyclist against the traffic, or riding fast along the sidewalk
        wrong = variant == "bike_wrong_way"
        p = S.cyclist(t0 + 1, lane, -lawful if wrong else int(rng.choice([-1, 1])), rng.uniform(2.2, 3.0),
                      on_sidewalk=not wrong)
        ids += [p.tid, S.bicycles[-1].tid]
    else:
        cx = (L.crossing_x[0] + L.crossing_x[1]) / 2
        yf, yn = L.far_band[1] - 2, L.near_band[0] + 4
        hit = t0 + int(0.5 * (t1 - t0))  # frame the car passes the crossing
        ped = S.person(t0 - 4, cx + rng.uniform(-10, 10), yf - 20, facing=1)
        ped.go_by(t0, ped.x, yf, "walk")
        stop = (L.road_top + L.lanes[0]) / 2 if lane == 1 else L.road_top + 2
        ped.go_by(hit - 2, ped.x, stop, "walk")
        ped.stay(hit + 6, "handsup", facing=1)
        ped.go(ped.x, yn, WALK * 1.3, "walk")
        ped.leave(int(rng.choice([-1, 1])))
        speed = rng.uniform(0.09, 0.12) * W
        half = 1.1 * S.h(L.lanes[lane])
        travel = abs(cx - (-half if lawful > 0 else W + half))
        v = S.vehicle(max(0, hit - int(travel / speed)), lane, lawful, speed, "car")
        ids += [ped.tid, v.tid]
    for lane_ in (0, 1):
        S.lane_busy[lane_].append((t0 - 10, t1 + 10))  # keep lawful traffic out of the way
    return ids


def ep_tampering(S: Stage, P: Phases) -> list[int]:
    """Someone covers, blinds, blurs, dazzles or knocks the camera for most of the phase."""
    rng = S.rng
    t0, t1 = P["camera_tampering"]
    f0 = t0 + int(rng.integers(0, max(1, int(0.3 * S.clip_frames))))
    f1 = t1 - int(rng.integers(0, 3))
    kind = str(rng.choice(["blackout", "cover", "blur", "bright", "dark", "shift"]))
    params: tuple[float, ...] = ()
    if kind == "cover":
        params = (rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.45, 0.7), rng.uniform(0.6, 0.9))
    elif kind == "blur":
        params = (float(rng.integers(21, 41)),)
    elif kind == "bright":
        params = (rng.uniform(2.2, 3.0), rng.uniform(40, 80))
    elif kind == "dark":
        params = (rng.uniform(0.15, 0.3), 0.0)
    elif kind == "shift":
        params = (rng.uniform(-1, 1) * 60, rng.uniform(-1, 1) * 40, rng.uniform(-12, 12))
    S.tampers.append(Tamper(f0, f1, kind, params))
    return []


def ep_loiter(S: Stage, P: Phases) -> list[int]:
    """Someone hangs about for a while (waiting, pacing) and walks off; nothing happens."""
    l0, l1 = P["loitering"]
    band = S.pick_band(0.6)
    x, y = _spot(S, band, 0.15, 0.85)
    p = S.walk_in(l0, x, y, -1 if x < S.layout.width / 2 else 1)
    p.loiter(l1, 0.45 * S.h(y))
    p.leave(speed=WALK)
    return [p.tid]


#: kind -> (crimes, [(phase name, concept, min clips, max clips, probability the phase is present)])
TEMPLATES: dict[str, tuple[tuple[str, ...], list[tuple[str, str, int, int, float]]]] = {
    "larceny": (("larceny",), [("loitering", "loitering", 2, 3, 1), ("item_seizure", "item_seizure", 1, 2, 1),
                               ("suspicious_exit", "suspicious_exit", 1, 1, 0.8)]),
    "robbery_armed": (("robbery",), [("loitering", "loitering", 1, 2, 1), ("lethal_object", "lethal_object", 1, 2, 1),
                                     ("forceful_seizure", "forceful_seizure", 1, 2, 1),
                                     ("suspicious_exit", "suspicious_exit", 1, 1, 1)]),
    "robbery_snatch": (("robbery",), [("loitering", "loitering", 1, 2, 0.8), ("forceful_seizure", "forceful_seizure", 1, 2, 1),
                                      ("suspicious_exit", "suspicious_exit", 1, 1, 1)]),
    "burglary": (("burglary",), [("camera_tampering", "camera_tampering", 1, 1, 0.4), ("sneaking", "sneaking", 2, 3, 1),
                                 ("inside", "normal", 1, 2, 1), ("suspicious_exit", "suspicious_exit", 1, 2, 1)]),
    "battery": (("battery",), [("loitering", "loitering", 1, 1, 0.5), ("violent_movement", "violent_movement", 2, 3, 1),
                               ("suspicious_exit", "suspicious_exit", 1, 1, 0.6)]),
    "traffic": ((), [("traffic_violation", "traffic_violation", 1, 2, 1)]),
    "tampering": ((), [("camera_tampering", "camera_tampering", 1, 2, 1)]),
    "loiter": ((), [("loitering", "loitering", 3, 5, 1)]),
}
KINDS = tuple(TEMPLATES)
for _kind, (_crimes, _phases) in TEMPLATES.items():  # names are the vocabulary's (geo.vocabulary): a typo fails at import
    check_crime_types(_crimes, f"scenes.agents.TEMPLATES[{_kind!r}]")
    check_concepts([_p[1] for _p in _phases], f"scenes.agents.TEMPLATES[{_kind!r}]")
#: every concept the generator stages: the episodes' plus ``normal`` (clips outside episodes)
STAGED_CONCEPTS = frozenset(["normal", *(p[1] for _, phases in TEMPLATES.values() for p in phases)])


def draw_phases(kind: str, rng: np.random.Generator) -> list[tuple[str, str, int]]:
    """Random phase lengths (clips) of one episode of ``kind``."""
    out = []
    for name, concept, lo, hi, p in TEMPLATES[kind][1]:
        if p >= 1 or rng.random() < p:
            out.append((name, concept, int(rng.integers(lo, hi + 1))))
    return out


def stage_episode(S: Stage, kind: str, first_clip: int, phases: list[tuple[str, str, int]]) -> Episode:
    """Label the clips of one episode and script its actors."""
    labelled, P = [], {}
    c = first_clip
    for name, concept, n in phases:
        labelled.append((name, concept, c, c + n))
        P[name] = (c * S.clip_frames, (c + n) * S.clip_frames)
        c += n
    ep = S.label(kind, TEMPLATES[kind][0], labelled)
    if kind == "larceny":
        ep.actors = ep_larceny(S, P)
    elif kind in ("robbery_armed", "robbery_snatch"):
        ep.actors = ep_robbery(S, P, armed=kind == "robbery_armed")
    elif kind == "burglary":
        if "camera_tampering" in P:
            ep_tampering(S, P)
        ep.actors = ep_burglary(S, P)
    elif kind == "battery":
        ep.actors = ep_battery(S, P)
    elif kind == "traffic":
        ep.actors = ep_traffic(S, P)
    elif kind == "tampering":
        ep.actors = ep_tampering(S, P)
    elif kind == "loiter":
        ep.actors = ep_loiter(S, P)
    else:
        raise ValueError(f"unknown episode kind {kind!r}")
    return ep


def schedule(stages: list[Stage], rng: np.random.Generator) -> None:
    """Place episodes on every camera's timeline, kinds handed out in turn from shuffled cycles."""
    queue: list[str] = []

    def next_kind() -> str:
        if not queue:
            queue.extend(rng.permutation(KINDS).tolist())
        return queue.pop(0)

    cursor = [int(rng.integers(1, 3)) for _ in stages]
    open_ = [True] * len(stages)
    while any(open_):
        for i, S in enumerate(stages):
            if not open_[i]:
                continue
            kind = next_kind()
            phases = draw_phases(kind, rng)
            n = sum(p[2] for p in phases)
            if cursor[i] + n + 1 > S.n_clips:  # no room: try a short one, else the camera is full
                queue.insert(0, kind)
                kind = "tampering" if rng.random() < 0.5 else "traffic"
                phases = [(p[0], p[1], 1) for p in draw_phases(kind, rng)]
                n = 1
                if cursor[i] + n + 1 > S.n_clips:
                    open_[i] = False
                    continue
            stage_episode(S, kind, cursor[i], phases)
            cursor[i] += n + int(rng.integers(1, 4))


def _crossing(S: Stage, f: int) -> None:
    """A passer-by who walks to the zebra crossing and crosses when both lanes are clear."""
    rng, L = S.rng, S.layout
    cx = rng.uniform(*L.crossing_x)
    down = rng.random() < 0.5  # far -> near sidewalk, or back
    y0 = rng.uniform(*L.far_band) if down else rng.uniform(*L.near_band)
    y1 = rng.uniform(*L.near_band) if down else rng.uniform(*L.far_band)
    side = int(rng.choice([-1, 1]))
    probe = Person(S, 0, 0, cx, y0, Look.random(rng), 1)
    speed = WALK * rng.uniform(0.9, 1.2)
    road = probe.frames_for(cx, y1, speed)
    if not (S.lane_free(0, f - 8, f + road + 8) and S.lane_free(1, f - 8, f + road + 8)):
        return
    p = S.walk_in(f, cx, y0, side, speed, look=probe.look)
    p.go(cx, y1, speed).leave(int(rng.choice([-1, 1])), speed)
    for lane in (0, 1):
        S.lane_busy[lane].append((f - 4, f + road + 4))  # traffic waits for the pedestrian


def background(S: Stage) -> None:
    """Passers-by (alone or in pairs, some with bags, some using the door or the crossing, a rare jogger)
    and lawful traffic that gives way at the crossing."""
    rng, L, fps = S.rng, S.layout, S.fps
    W = L.width
    for lane in (0, 1):
        direction = -1 if lane == 0 else 1
        f = -int(rng.uniform(0, 5) * fps)
        while f < S.n_frames:
            f += max(1, int(rng.exponential(5.0) * fps))
            speed = rng.uniform(0.035, 0.055) * W
            half = 1.3 * S.h(L.lanes[lane])
            n = math.ceil((W + 2 * half) / speed)
            if f < S.n_frames and S.lane_free(lane, f, f + n, pad=3):
                S.vehicle(f, lane, direction, speed)
                f += n
    f = 0
    while True:  # lawful cyclists, in the lane's direction
        f += max(1, int(rng.exponential(30.0) * fps))
        lane = int(rng.integers(2))
        if f >= S.n_frames:
            break
        if S.lane_free(lane, f - 5, f + int(4 * fps)):
            S.cyclist(f, lane, -1 if lane == 0 else 1, rng.uniform(1.6, 2.2))
    f = 0
    while True:
        f += max(1, int(rng.exponential(25.0) * fps))
        if f >= S.n_frames:
            break
        _crossing(S, f)
    for band, rate in ((L.far_band, 0.10 * S.crowd), (L.near_band, 0.12 * S.crowd)):
        f = -int(rng.uniform(0, 6) * fps)  # some are already in view at frame 0
        while True:
            f += max(1, int(rng.exponential(1 / rate) * fps))
            if f >= S.n_frames:
                break
            y = rng.uniform(*band)
            side = int(rng.choice([-1, 1]))
            speed = WALK * rng.uniform(0.8, 1.2)
            u = rng.random()
            pair = None
            if band == L.far_band and u < 0.12:  # comes out of the door and walks away calmly
                dx, dy = L.door_point
                S.open_door(f - 1, f + 6)
                p = S.person(f, dx, dy, facing=side)
                p.go(dx + side * 0.3 * S.h(y), y, speed).leave(side, speed)
            elif band == L.far_band and u < 0.22:  # walks in and enters the door
                dx, dy = L.door_point
                p = S.walk_in(f, dx, y, side, speed)
                p.go(dx, dy, speed)
                S.open_door(p.end - 5, p.end + 2)
            elif u < 0.25:  # a jogger: fast but steady, never looking back
                p = S.person(f, S.edge_x(side, y), y, facing=-side)
                p.leave(-side, RUN * rng.uniform(0.6, 0.8), "run")
            else:
                p = S.person(f, S.edge_x(side, y), y, facing=-side)
                if rng.random() < 0.15:  # stops briefly (phone, window) on the way
                    xm = rng.uniform(0.2, 0.8) * W
                    p.go(xm, y, speed).stay(p.end + int(rng.integers(5, 15)), "stand")
                p.leave(-side, speed)
                if rng.random() < 0.15:  # walks with a companion, side by side
                    y2 = float(np.clip(y + rng.uniform(3, 8), *band))
                    pair = S.person(f, S.edge_x(side, y2) + side * 0.35 * S.h(y2), y2, facing=-side)
                    for seg in p.segs:
                        pair._add(seg.f1, seg.x1 + side * 0.35 * S.h(y2), y2, seg.mode, seg.facing)
            for q in (p, pair):
                if q is not None and rng.random() < 0.18:
                    S.bag().add(q.start, q.end, "held", q, "back")
