"""Drawing for the scene generator: backgrounds, people, bags, weapons, vehicles, tampering.

Everything is drawn with OpenCV primitives on uint8 BGR frames.  A camera's
:class:`Layout` fixes the static street geometry (facades with a doorway, far
sidewalk, road with lane markings and a zebra crossing, near sidewalk) and a
simple perspective: a person whose feet are at image row ``y`` is
:meth:`Layout.person_height` pixels tall (about 28% of the frame height at the
facade line, 42% at the bottom edge), so at 640x360 people are 100-150 px tall,
the size OpenCV's default HOG people detector (64x128 window) finds best.

People are drawn as upright silhouettes (head with hair, torso, two-segment arms
and legs that swing with the gait phase, shoes, a dark outline for clear edges)
in a few poses: walk, run, stand, crouch (sneaking), reach (picking up), fight,
struggle, point (holding a weapon out), hands up, ride (on a bicycle), look back.  Each draw function
returns the drawn object's box so ground truth matches the pixels exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np

#: ground-truth box classes; a box's class id is the index in this list
CLASSES: tuple[str, ...] = ("person", "bag", "weapon", "vehicle")
PERSON, BAG, WEAPON, VEHICLE = range(4)

AA = cv2.LINE_AA
SHIRTS = [(40, 40, 170), (150, 60, 30), (40, 120, 40), (30, 30, 30), (200, 200, 205), (30, 150, 200),
          (120, 40, 120), (20, 70, 140), (170, 140, 60), (90, 90, 90), (60, 60, 200), (200, 120, 50)]
TROUSERS = [(35, 35, 35), (90, 50, 20), (60, 60, 70), (120, 100, 70), (20, 20, 60), (140, 140, 140), (40, 50, 30)]
SKINS = [(140, 170, 220), (100, 135, 190), (60, 90, 140), (45, 65, 100), (170, 195, 235)]
HAIRS = [(20, 20, 20), (30, 50, 90), (60, 90, 140), (160, 160, 160), (15, 25, 45)]
BAGS = [(30, 60, 110), (25, 25, 25), (40, 40, 150), (110, 70, 30), (60, 120, 150)]
CARS = [(200, 200, 200), (40, 40, 40), (30, 30, 160), (140, 80, 30), (190, 190, 120), (60, 110, 60), (230, 230, 230)]


@dataclass(frozen=True)
class Layout:
    """Static street geometry of one camera, in pixels."""

    width: int
    height: int
    facade_y: int  # bottom of the building facades (the far sidewalk starts here)
    road_top: int
    road_bottom: int
    door: tuple[int, int, int, int]  # x1, y1, x2, y2 of the doorway
    crossing_x: tuple[int, int]  # x range of the zebra crossing
    person_scale: float = 1.0  # camera height and zoom: < 1 is a higher or wider camera (smaller people)

    def person_height(self, y: float) -> float:
        t = (y - self.facade_y) / max(1.0, self.height - self.facade_y)
        return self.height * self.person_scale * (0.28 + 0.14 * t)

    @property
    def far_band(self) -> tuple[float, float]:
        """Feet rows of people walking on the far sidewalk."""
        return self.facade_y + 4.0, self.road_top - 3.0

    @property
    def near_band(self) -> tuple[float, float]:
        """Feet rows of people walking on the near sidewalk."""
        return self.road_bottom + 0.25 * (self.height - self.road_bottom), self.height - 4.0

    @property
    def lanes(self) -> tuple[float, float]:
        """Bottom rows of vehicles in the upper (leftbound) and lower (rightbound) lane."""
        rh = self.road_bottom - self.road_top
        return self.road_top + 0.42 * rh, self.road_bottom - 0.04 * rh

    @property
    def door_point(self) -> tuple[float, float]:
        x1, _, x2, y2 = self.door
        return (x1 + x2) / 2.0, float(y2) + 2.0


def make_layout(rng: np.random.Generator, width: int, height: int, person_scale: float = 1.0) -> Layout:
    facade_y = int(height * rng.uniform(0.40, 0.46))
    road_top = facade_y + int(height * rng.uniform(0.12, 0.15))
    road_bottom = road_top + int(height * rng.uniform(0.21, 0.24))
    hf = height * 0.28 * person_scale
    dw, dh = int(hf * 0.5), int(hf * 1.25)
    dx = int(rng.uniform(0.2, 0.8) * width)
    cw = int(width * 0.12)
    cx = int(rng.uniform(0.25, 0.75) * width)
    return Layout(width, height, facade_y, road_top, road_bottom,
                  (dx - dw // 2, facade_y - dh, dx + dw // 2, facade_y), (cx - cw // 2, cx + cw // 2), person_scale)


# -- background ---------------------------------------------------------------------------
def _jit(rng: np.random.Generator, colour, amount: int = 18) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def render_background(layout: Layout, rng: np.random.Generator, clutter: int = 0) -> np.ndarray:
    """The static textured street scene of one camera (uint8 BGR); ``clutter`` extra static distractors
    (trees, sign posts, bollards, bins) that a detector must not take for people."""
    W, H, L = layout.width, layout.height, layout
    k = H / 360.0  # fixed details were designed at 640x360
    img = np.zeros((H, W, 3), np.uint8)
    # facades: a row of buildings with window grids, some windows lit (evening)
    x = -int(rng.integers(0, 60))
    while x < W:
        bw = int(rng.uniform(0.22, 0.45) * W)
        base = _jit(rng, [(60, 70, 140), (120, 120, 125), (150, 170, 185), (70, 90, 110), (100, 100, 90)][rng.integers(5)], 15)
        cv2.rectangle(img, (x, 0), (x + bw, L.facade_y), base, -1)
        cv2.line(img, (x, 0), (x, L.facade_y), tuple(int(c * 0.6) for c in base), 2)
        ww, wh = max(3, int(rng.integers(14, 22) * k)), max(4, int(rng.integers(18, 28) * k))
        gx, gy = ww + max(2, int(rng.integers(8, 16) * k)), wh + max(2, int(rng.integers(10, 18) * k))
        for wy in range(int(8 * k), L.facade_y - wh - int(40 * k), gy):
            for wx in range(x + int(8 * k), x + bw - ww - int(4 * k), gx):
                lit = rng.random() < 0.25
                col = (90, 200, 230) if lit else _jit(rng, (70, 55, 45), 10)
                cv2.rectangle(img, (wx, wy), (wx + ww, wy + wh), col, -1)
                cv2.rectangle(img, (wx, wy), (wx + ww, wy + wh), tuple(int(c * 0.5) for c in base), 1)
        cv2.rectangle(img, (x, L.facade_y - int(14 * k)), (x + bw, L.facade_y), tuple(int(c * 0.7) for c in base), -1)
        x += bw
    # doorway with frame and step
    x1, y1, x2, y2 = L.door
    cv2.rectangle(img, (x1 - 4, y1 - 5), (x2 + 4, y2), (70, 70, 75), -1)
    cv2.rectangle(img, (x1, y1), (x2, y2), (30, 50, 80), -1)
    cv2.line(img, ((x1 + x2) // 2, y1), ((x1 + x2) // 2, y2), (20, 30, 50), 1)
    cv2.circle(img, (x2 - 6, (y1 + y2) // 2), 2, (150, 180, 200), -1)
    cv2.rectangle(img, (x1 - 8, y1 - 14), (x2 + 8, y1 - 6), (40, 180, 220), -1)  # lit sign over the door
    # sidewalks with perspective paving
    for top, bot, col in ((L.facade_y, L.road_top, (150, 155, 160)), (L.road_bottom, H, (140, 150, 160))):
        col = _jit(rng, col, 10)
        cv2.rectangle(img, (0, top), (W, bot), col, -1)
        line = tuple(int(c * 0.8) for c in col)
        vx, vy = W / 2, -H * 1.5
        for xb in range(-W, 2 * W, max(8, int(48 * k))):
            xt = vx + (xb - vx) * (top - vy) / (bot - vy)
            cv2.line(img, (int(xt), top), (int(xb), bot), line, 1)
        yy = float(top)
        while yy < bot:
            cv2.line(img, (0, int(yy)), (W, int(yy)), line, 1)
            yy += 6 * k + 0.12 * (yy - top)
    # road, curbs, lane markings, zebra crossing
    cv2.rectangle(img, (0, L.road_top), (W, L.road_bottom), _jit(rng, (70, 72, 75), 8), -1)
    cv2.rectangle(img, (0, L.road_top - 3), (W, L.road_top), (185, 185, 185), -1)
    cv2.rectangle(img, (0, L.road_bottom), (W, L.road_bottom + 4), (185, 185, 185), -1)
    mid = (L.road_top + L.road_bottom) // 2
    for xd in range(int(rng.integers(0, 40) * k), W, max(10, int(70 * k))):
        cv2.rectangle(img, (xd, mid - 2), (xd + int(38 * k), mid + 1), (210, 215, 215), -1)
    cx1, cx2 = L.crossing_x
    yy = L.road_top + 3
    while yy < L.road_bottom - 4:
        sh = 5 + int(0.08 * (yy - L.road_top))
        cv2.rectangle(img, (cx1, yy), (cx2, min(yy + sh, L.road_bottom - 2)), (215, 220, 220), -1)
        yy += 2 * sh
    # street furniture: lamp posts, bins, a bench, bollards
    for _ in range(int(rng.integers(1, 3))):
        lx = int(rng.uniform(0.05, 0.95) * W)
        ly = L.road_top - 4
        cv2.line(img, (lx, ly), (lx, ly - int(H * 0.38)), (50, 55, 55), 3)
        cv2.ellipse(img, (lx + int(8 * k), ly - int(H * 0.38)), (int(12 * k), max(2, int(4 * k))), 0, 0, 360,
                    (180, 230, 240), -1)
    for _ in range(int(rng.integers(1, 3))):
        bx = int(rng.uniform(0.05, 0.95) * W)
        by = int(rng.uniform(L.road_bottom + 14, H - 6))
        s = layout.person_height(by) / 120
        cv2.rectangle(img, (bx, by - int(34 * s)), (bx + int(22 * s), by), _jit(rng, (40, 80, 40), 20), -1)
        cv2.rectangle(img, (bx - 2, by - int(36 * s)), (bx + int(24 * s), by - int(32 * s)), (30, 30, 30), -1)
    bx = int(rng.uniform(0.05, 0.7) * W)
    by = int(L.facade_y + 0.6 * (L.road_top - L.facade_y))
    K = lambda v: int(round(v * k))  # noqa: E731
    cv2.rectangle(img, (bx, by - K(22)), (bx + K(90), by - K(14)), (40, 70, 110), -1)
    cv2.rectangle(img, (bx + K(4), by - K(14)), (bx + K(8), by), (30, 30, 30), -1)
    cv2.rectangle(img, (bx + K(82), by - K(14)), (bx + K(86), by), (30, 30, 30), -1)
    if clutter:
        draw_clutter(img, layout, rng, clutter)
    # evening light: darker, slightly blue, with street-lamp pools; fixed texture noise
    img = cv2.convertScaleAbs(img, alpha=float(rng.uniform(0.72, 0.95)), beta=-5)
    img[..., 0] = cv2.add(img[..., 0], 8)
    noise = rng.normal(0, 5, img.shape).astype(np.int16)
    img = np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (3, 3), 0.6)


def draw_clutter(img: np.ndarray, layout: Layout, rng: np.random.Generator, n: int) -> None:
    """Static distractors of person-like size on the sidewalks: trees, sign posts, bollard rows, bins."""
    W, H, L = layout.width, layout.height, layout
    for _ in range(n):
        near = rng.random() < 0.5
        y = int(rng.uniform(L.road_bottom + 10, H - 4) if near else rng.uniform(L.facade_y + 3, L.road_top - 4))
        x = int(rng.uniform(0.03, 0.97) * W)
        h = L.person_height(y)
        kind = rng.integers(4)
        if kind == 0:  # tree: trunk and a round crown
            cv2.rectangle(img, (x - int(0.04 * h), y - int(0.9 * h)), (x + int(0.04 * h), y), _jit(rng, (40, 60, 80)), -1)
            cv2.ellipse(img, (x, y - int(1.15 * h)), (int(0.35 * h), int(0.4 * h)), 0, 0, 360,
                        _jit(rng, (40, 110, 50), 25), -1)
        elif kind == 1:  # sign post with a plate
            cv2.line(img, (x, y), (x, y - int(1.1 * h)), (90, 90, 95), max(2, int(0.03 * h)))
            cv2.rectangle(img, (x - int(0.15 * h), y - int(1.3 * h)), (x + int(0.15 * h), y - int(1.05 * h)),
                          _jit(rng, [(180, 60, 30), (30, 30, 180), (200, 200, 200)][rng.integers(3)], 20), -1)
        elif kind == 2:  # a row of bollards
            for j in range(int(rng.integers(3, 6))):
                bx = x + j * int(0.25 * h)
                cv2.rectangle(img, (bx, y - int(0.35 * h)), (bx + int(0.07 * h), y), _jit(rng, (60, 60, 60), 30), -1)
        else:  # a tall bin or a parking meter
            cv2.rectangle(img, (x, y - int(0.5 * h)), (x + int(0.18 * h), y), _jit(rng, (50, 90, 60), 30), -1)


def draw_open_door(img: np.ndarray, layout: Layout) -> None:
    x1, y1, x2, y2 = layout.door
    cv2.rectangle(img, (x1, y1), (x2, y2), (12, 14, 18), -1)
    cv2.rectangle(img, (x2 - 4, y1), (x2 + 3, y2), (30, 50, 80), -1)


# -- people -------------------------------------------------------------------------------
@dataclass
class Look:
    """A person's appearance."""

    shirt: tuple[int, int, int]
    trousers: tuple[int, int, int]
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    shoes: tuple[int, int, int]
    scale: float  # body height relative to the perspective height
    build: float  # width factor

    @classmethod
    def random(cls, rng: np.random.Generator) -> "Look":
        return cls(SHIRTS[rng.integers(len(SHIRTS))], TROUSERS[rng.integers(len(TROUSERS))],
                   SKINS[rng.integers(len(SKINS))], HAIRS[rng.integers(len(HAIRS))],
                   (20, 20, 25) if rng.random() < 0.7 else (200, 200, 200),
                   float(rng.uniform(0.9, 1.08)), float(rng.uniform(0.9, 1.15)))


@dataclass
class Pose:
    """What a person does in one frame (see :func:`draw_person`)."""

    x: float  # feet position
    y: float
    facing: int  # +1 right, -1 left
    phase: float  # gait phase (radians)
    mode: str  # walk run stand loiter crouch reach fight struggle point handsup ride
    jitter: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)  # per-frame random numbers in [-1, 1]
    lookback: float = 0.0  # 0..1: head turned back over the shoulder


@dataclass
class Drawn:
    box: tuple[float, float, float, float]
    hand_front: tuple[float, float]
    hand_back: tuple[float, float]
    forearm_dir: tuple[float, float]  # unit vector of the front forearm (for held weapons)
    height: float


def _limb(origin, a1: float, l1: float, a2: float, l2: float, facing: int):
    """Two-segment limb; angles from straight down, positive toward the facing side."""
    ox, oy = origin
    jx, jy = ox + facing * l1 * math.sin(a1), oy + l1 * math.cos(a1)
    ex, ey = jx + facing * l2 * math.sin(a2), jy + l2 * math.cos(a2)
    return (jx, jy), (ex, ey)


def _darker(c, k: float = 0.75):
    return tuple(int(v * k) for v in c)


def draw_person(img: np.ndarray, pose: Pose, look: Look, base_height: float) -> Drawn:
    """Draw one person with feet at (pose.x, pose.y); return its box and hand points."""
    h = base_height * look.scale
    d = pose.facing
    m = pose.mode
    j = pose.jitter
    rad = math.radians
    # gait: thigh/shin swing, torso lean, arm angles, body crouch
    lean, crouch = 0.0, 1.0
    if m == "run":
        s = math.sin(pose.phase)
        thigh = (rad(42) * s, -rad(42) * s)
        shin = (thigh[0] - rad(35) * max(0.0, -s) - rad(15), thigh[1] - rad(35) * max(0.0, s) - rad(15))
        arms = ((-rad(55) * s, rad(80)), (rad(55) * s, rad(80)))
        lean = rad(14)
    elif m in ("walk", "loiter"):
        amp = rad(26) if m == "walk" else rad(14)
        s = math.sin(pose.phase)
        thigh = (amp * s, -amp * s)
        shin = (thigh[0] - rad(12) * max(0.0, -s), thigh[1] - rad(12) * max(0.0, s))
        arms = ((-amp * 0.8 * s, -amp * 0.5 * s + rad(10)), (amp * 0.8 * s, amp * 0.5 * s + rad(10)))
    elif m == "crouch":
        s = math.sin(pose.phase)
        thigh = (rad(70) + rad(14) * s, rad(40) - rad(14) * s)
        shin = (-rad(15), -rad(35))
        arms = ((rad(40), rad(70)), (rad(20), rad(60)))
        lean, crouch = rad(38), 0.78
    elif m == "reach":
        thigh, shin = (rad(55), rad(25)), (-rad(20), -rad(30))
        arms = ((rad(25), rad(15)), (rad(10), rad(5)))
        lean, crouch = rad(45), 0.8
    elif m == "fight":
        thigh = (rad(22) + rad(10) * j[0], -rad(18) + rad(10) * j[1])
        shin = (thigh[0] - rad(10), thigh[1] - rad(10))
        arms = ((rad(95) + rad(60) * j[2], rad(100) + rad(70) * j[3]), (rad(70) + rad(70) * j[4], rad(60) + rad(60) * j[0]))
        lean = rad(12) * j[1]
    elif m == "struggle":
        thigh = (rad(25) + rad(8) * j[0], -rad(25) + rad(8) * j[1])
        shin = (thigh[0] - rad(8), thigh[1] - rad(8))
        arms = ((rad(80) + rad(20) * j[2], rad(85) + rad(15) * j[3]), (rad(70) + rad(20) * j[4], rad(80)))
        lean = rad(-8) + rad(10) * j[1]
    elif m == "point":
        thigh, shin = (rad(12), -rad(10)), (rad(12), -rad(10))
        arms = ((rad(88), rad(90)), (rad(10), rad(5)))
    elif m == "handsup":
        thigh, shin = (rad(6), -rad(6)), (rad(6), -rad(6))
        arms = ((rad(160) + rad(8) * j[0], rad(175)), (rad(150) + rad(8) * j[1], rad(170)))
        lean = -rad(6)
    elif m == "ride":  # on a bicycle: pedalling legs, leaning onto the handlebar
        c, s = math.cos(pose.phase), math.sin(pose.phase)
        thigh = (rad(62) + rad(22) * s, rad(62) - rad(22) * s)
        shin = (rad(-8) + rad(25) * c, rad(-8) - rad(25) * c)
        arms = ((rad(62), rad(80)), (rad(58), rad(76)))
        lean = rad(28)
    else:  # stand
        sway = rad(3) * j[0]
        thigh, shin = (rad(6) + sway, -rad(6) + sway), (rad(6) + sway, -rad(6) + sway)
        arms = ((rad(8), rad(12)), (rad(6), rad(10)))
    # skeleton, hip at origin; lengths in units of the body height
    leg1, leg2 = 0.25 * h, 0.25 * h
    torso, arm1, arm2 = 0.30 * h, 0.17 * h, 0.16 * h
    knees, feet = [], []
    for k in range(2):
        kn, ft = _limb((0.0, 0.0), thigh[k], leg1, shin[k], leg2, d)
        knees.append(kn)
        feet.append(ft)
    ground = 0.5 * h if m == "ride" else max(feet[0][1], feet[1][1]) + 0.02 * h  # riders sit on the saddle
    ox, oy = pose.x, pose.y - ground  # hip in image coordinates
    T = lambda p: (ox + p[0], oy + p[1])  # noqa: E731
    sh = (d * torso * math.sin(lean), -torso * math.cos(lean))
    shoulder = T(sh)
    ux, uy = math.sin(lean) * d, -math.cos(lean)  # torso axis, hip -> shoulder
    look_back = pose.lookback * 0.05 * h
    head_c = (shoulder[0] + ux * 0.11 * h - d * look_back, shoulder[1] + uy * 0.11 * h)
    head_r = 0.068 * h
    hw_s, hw_h = 0.115 * h * look.build, 0.085 * h * look.build
    px, py = -uy, ux  # perpendicular to the torso axis
    torso_poly = np.array([(ox - px * hw_h, oy - py * hw_h), (ox + px * hw_h, oy + py * hw_h),
                           (shoulder[0] + px * hw_s, shoulder[1] + py * hw_s),
                           (shoulder[0] - px * hw_s, shoulder[1] - py * hw_s)])
    back_sh = (shoulder[0] - d * 0.45 * hw_s, shoulder[1] + 0.02 * h)
    front_sh = (shoulder[0] + d * 0.45 * hw_s, shoulder[1] + 0.02 * h)
    hands = []
    elbows = []
    for k, origin in enumerate((front_sh, back_sh)):
        a1, a2 = arms[k]
        el, hd = _limb(origin, a1 + lean, arm1, a2 + lean, arm2, d)
        elbows.append(el)
        hands.append(hd)
    tl, ta = max(2, int(round(0.085 * h * look.build))), max(2, int(round(0.055 * h * look.build)))
    outline = (15, 15, 15)
    back_tr, back_sk = _darker(look.trousers), _darker(look.shirt)
    I = lambda p: (int(round(p[0])), int(round(p[1])))  # noqa: E731

    def leg(k, col):
        hip = (ox, oy)
        kn, ft = T(knees[k]), T(feet[k])
        cv2.line(img, I(hip), I(kn), outline, tl + 2, AA)
        cv2.line(img, I(kn), I(ft), outline, tl + 2, AA)
        cv2.line(img, I(hip), I(kn), col, tl, AA)
        cv2.line(img, I(kn), I(ft), col, tl, AA)
        cv2.line(img, I(ft), I((ft[0] + d * 0.05 * h, ft[1])), look.shoes, max(2, tl - 1), AA)

    def arm(k, col):
        o = front_sh if k == 0 else back_sh
        cv2.line(img, I(o), I(elbows[k]), outline, ta + 2, AA)
        cv2.line(img, I(elbows[k]), I(hands[k]), outline, ta + 2, AA)
        cv2.line(img, I(o), I(elbows[k]), col, ta, AA)
        cv2.line(img, I(elbows[k]), I(hands[k]), col, ta, AA)
        cv2.circle(img, I(hands[k]), max(1, ta // 2 + 1), look.skin, -1, AA)

    leg(1, back_tr)
    arm(1, back_sk)
    cv2.fillConvexPoly(img, np.round(torso_poly).astype(np.int32), look.shirt, AA)
    cv2.polylines(img, [np.round(torso_poly).astype(np.int32)], True, outline, 1, AA)
    leg(0, look.trousers)
    cv2.line(img, I(shoulder), I(head_c), look.skin, max(2, int(0.05 * h)), AA)
    cv2.circle(img, I(head_c), int(round(head_r)) + 1, outline, -1, AA)
    cv2.circle(img, I(head_c), int(round(head_r)), look.skin, -1, AA)
    hair_dir = 0 if pose.lookback < 0.5 else d * 25
    cv2.ellipse(img, I((head_c[0], head_c[1] - 0.2 * head_r)), (int(head_r), int(head_r * 0.85)), hair_dir,
                180, 360, look.hair, -1, AA)
    arm(0, look.shirt)
    pts = np.array([T(p) for p in knees + feet] + [shoulder, front_sh, back_sh] + hands + elbows
                   + [(head_c[0] - head_r, head_c[1] - head_r), (head_c[0] + head_r, head_c[1] + head_r)]
                   + [tuple(p) for p in torso_poly])
    pad = tl / 2 + 1
    x1, y1 = pts.min(axis=0) - pad
    x2, y2 = pts.max(axis=0) + pad
    fa = (hands[0][0] - elbows[0][0], hands[0][1] - elbows[0][1])
    n = math.hypot(*fa) or 1.0
    return Drawn((x1, y1, x2, y2), hands[0], hands[1], (fa[0] / n, fa[1] / n), h)


def draw_shadow(img: np.ndarray, x: float, y: float, rx: float, ry: float, k: float = 0.62) -> None:
    """Darken an ellipse on the ground under an object (street lights from above)."""
    H, W = img.shape[:2]
    x1, x2 = max(0, int(x - rx)), min(W, int(x + rx) + 1)
    y1, y2 = max(0, int(y - ry)), min(H, int(y + ry) + 1)
    if x2 <= x1 or y2 <= y1:
        return
    roi = img[y1:y2, x1:x2]
    mask = np.zeros(roi.shape[:2], np.uint8)
    cv2.ellipse(mask, (int(x) - x1, int(y) - y1), (max(1, int(rx)), max(1, int(ry))), 0, 0, 360, 255, -1)
    sel = mask > 0
    roi[sel] = (roi[sel] * k).astype(np.uint8)


# -- objects ------------------------------------------------------------------------------
def draw_bag(img: np.ndarray, x: float, y: float, size: float, colour, held: bool) -> tuple[float, float, float, float]:
    """A bag hanging from a hand at (x, y) (``held``) or standing on the ground with its bottom at y."""
    w, hgt = 0.17 * size, 0.15 * size
    if held:
        x1, y1 = x - w / 2, y + 0.02 * size
    else:
        x1, y1 = x - w / 2, y - hgt
    x2, y2 = x1 + w, y1 + hgt
    p1, p2 = (int(x1), int(y1)), (int(x2), int(y2))
    cv2.rectangle(img, p1, p2, colour, -1)
    cv2.rectangle(img, p1, p2, (10, 10, 10), 1)
    cv2.ellipse(img, (int(x), int(y1)), (max(2, int(w * 0.3)), max(2, int(hgt * 0.35))), 0, 180, 360, (15, 15, 15), 2, AA)
    cv2.line(img, (int(x1) + 2, int(y1 + hgt * 0.35)), (int(x2) - 2, int(y1 + hgt * 0.35)), _darker(colour, 0.6), 1)
    return x1, y1 - hgt * 0.35, x2, y2


def draw_weapon(img: np.ndarray, hand: tuple[float, float], direction: tuple[float, float], size: float,
                kind: str) -> tuple[float, float, float, float]:
    """A knife (light blade, dark handle) or pistol held at ``hand`` pointing along ``direction``."""
    hx, hy = hand
    dx, dy = direction
    if kind == "knife":
        tip = (hx + dx * 0.28 * size, hy + dy * 0.28 * size)
        grip = (hx - dx * 0.06 * size, hy - dy * 0.06 * size)
        cv2.line(img, (int(grip[0]), int(grip[1])), (int(hx), int(hy)), (20, 20, 20), max(3, int(0.04 * size)), AA)
        cv2.line(img, (int(hx), int(hy)), (int(tip[0]), int(tip[1])), (15, 15, 15), max(4, int(0.035 * size) + 2), AA)
        cv2.line(img, (int(hx), int(hy)), (int(tip[0]), int(tip[1])), (235, 240, 245), max(2, int(0.035 * size)), AA)
        pts = [grip, tip]
    else:  # pistol: barrel along the arm, grip downward
        tip = (hx + dx * 0.2 * size, hy + dy * 0.2 * size)
        cv2.line(img, (int(hx), int(hy)), (int(tip[0]), int(tip[1])), (25, 25, 28), max(4, int(0.055 * size)), AA)
        g = (hx + 0.01 * size, hy + 0.09 * size)
        cv2.line(img, (int(hx), int(hy)), (int(g[0]), int(g[1])), (25, 25, 28), max(4, int(0.045 * size)), AA)
        pts = [(hx, hy), tip, g]
    a = np.array(pts)
    pad = 0.035 * size
    x1, y1 = a.min(axis=0) - pad
    x2, y2 = a.max(axis=0) + pad
    return x1, y1, x2, y2


def draw_vehicle(img: np.ndarray, x: float, y: float, size: float, direction: int, colour, kind: str) -> tuple[float, float, float, float]:
    """A car or van, centred at x with its wheels on row y; ``size`` is the person height at y."""
    L = (2.1 if kind == "car" else 2.4) * size
    Hh = (0.75 if kind == "car" else 1.0) * size
    x1, x2, top = x - L / 2, x + L / 2, y - Hh
    body_top = y - 0.55 * Hh
    I = int
    cv2.rectangle(img, (I(x1), I(body_top)), (I(x2), I(y - 0.12 * Hh)), colour, -1)
    if kind == "car":
        cab = np.array([(x1 + 0.22 * L, body_top), (x1 + 0.32 * L, top), (x1 + 0.70 * L, top), (x1 + 0.82 * L, body_top)])
        if direction < 0:
            cab[:, 0] = 2 * x - cab[:, 0]
    else:
        cab = np.array([(x1 + 0.02 * L, body_top), (x1 + 0.02 * L, top), (x1 + 0.78 * L, top), (x1 + 0.92 * L, body_top)])
        if direction < 0:
            cab[:, 0] = 2 * x - cab[:, 0]
    cv2.fillConvexPoly(img, np.round(cab).astype(np.int32), colour, AA)
    inner = cab.copy()
    cx, cy = cab.mean(axis=0)
    inner = (inner - (cx, cy)) * 0.8 + (cx, cy)
    cv2.fillConvexPoly(img, np.round(inner).astype(np.int32), (90, 70, 50), AA)
    cv2.line(img, (I(cx), I(inner[:, 1].min())), (I(cx), I(body_top)), colour, 3)
    cv2.rectangle(img, (I(x1), I(body_top)), (I(x2), I(y - 0.12 * Hh)), (15, 15, 15), 1)
    r = 0.16 * Hh if kind == "car" else 0.13 * Hh
    for wx in (x1 + 0.2 * L, x2 - 0.2 * L):
        cv2.circle(img, (I(wx), I(y - r)), I(r), (20, 20, 20), -1, AA)
        cv2.circle(img, (I(wx), I(y - r)), max(2, I(r * 0.45)), (150, 150, 150), -1, AA)
    front = x2 if direction > 0 else x1
    cv2.circle(img, (I(front - direction * 4), I(body_top + 0.12 * Hh)), max(3, I(0.05 * Hh)), (190, 240, 255), -1, AA)
    back = x1 if direction > 0 else x2
    cv2.circle(img, (I(back + direction * 4), I(body_top + 0.12 * Hh)), max(3, I(0.045 * Hh)), (30, 30, 220), -1, AA)
    return x1, top, x2, y


def draw_bicycle(img: np.ndarray, x: float, y: float, size: float, direction: int, colour, phase: float) -> tuple[float, float, float, float]:
    """A bicycle under a rider whose hip (saddle) is above (x, y - size/2); ``size`` is the rider's height."""
    d = direction
    r = 0.17 * size
    back, front = (x - d * 0.28 * size, y - r), (x + d * 0.36 * size, y - r)
    crank = (x + d * 0.04 * size, y - 0.8 * r)
    saddle = (x - d * 0.02 * size, y - 0.5 * size)
    bar = (x + d * 0.30 * size, y - 0.6 * size)
    I = lambda p: (int(round(p[0])), int(round(p[1])))  # noqa: E731
    t = max(2, int(0.022 * size))
    for wc in (back, front):
        cv2.circle(img, I(wc), int(r), (20, 20, 20), max(2, int(0.03 * size)), AA)
        cv2.circle(img, I(wc), 2, (160, 160, 160), -1, AA)
    for a, b in ((back, crank), (crank, saddle), (saddle, back), (saddle, bar), (bar, front), (crank, bar)):
        cv2.line(img, I(a), I(b), colour, t, AA)
    pedal = (crank[0] + 0.06 * size * math.cos(phase), crank[1] + 0.06 * size * math.sin(phase))
    cv2.line(img, I(crank), I(pedal), (30, 30, 30), t, AA)
    x1 = min(back[0], front[0]) - r
    x2 = max(back[0], front[0]) + r
    return x1, min(bar[1], saddle[1]) - 0.02 * size, x2, y


# -- camera tampering ---------------------------------------------------------------------
@dataclass
class Tamper:
    """A tampering effect over frames [f0, f1)."""

    f0: int
    f1: int
    kind: str  # blackout cover blur bright dark shift
    params: tuple[float, ...] = field(default_factory=tuple)


def apply_tamper(img: np.ndarray, t: Tamper, f: int, boxes: list[list[float]]) -> tuple[np.ndarray, list[list[float]]]:
    """Apply one tampering effect to a frame; return the frame and the boxes still visible."""
    H, W = img.shape[:2]
    ramp = min(1.0, (f - t.f0 + 1) / 3.0)  # effects come on over three frames
    if t.kind == "blackout":
        out = cv2.convertScaleAbs(img, alpha=1.0 - 0.95 * ramp)
        return out, (boxes if ramp < 0.6 else [])
    if t.kind == "cover":  # a hand or cloth over the lens: a large dark blob
        cx, cy, rx, ry = t.params
        mask = np.zeros((H, W), np.uint8)
        cv2.ellipse(mask, (int(cx * W), int(cy * H)), (int(rx * W * ramp), int(ry * H * ramp)), 0, 0, 360, 255, -1)
        mask = cv2.GaussianBlur(mask, (31, 31), 0)
        a = (mask.astype(np.float32) / 255.0)[..., None]
        out = (img * (1 - a) + np.array([25, 35, 50], np.float32) * a).astype(np.uint8)
        kept = []
        for b in boxes:
            x1, y1, x2, y2 = (int(max(0, b[1])), int(max(0, b[2])), int(min(W, b[3])), int(min(H, b[4])))
            if x2 > x1 and y2 > y1 and mask[y1:y2, x1:x2].mean() < 128:
                kept.append(b)
        return out, kept
    if t.kind == "blur":
        k = int(t.params[0]) | 1
        return cv2.GaussianBlur(img, (k, k), 0), boxes
    if t.kind in ("bright", "dark"):
        return cv2.convertScaleAbs(img, alpha=1.0 + (t.params[0] - 1.0) * ramp, beta=t.params[1] * ramp), boxes
    if t.kind == "shift":
        dx, dy, ang = (p * ramp for p in t.params)
        M = cv2.getRotationMatrix2D((W / 2, H / 2), ang, 1.0)
        M[:, 2] += (dx, dy)
        out = cv2.warpAffine(img, M, (W, H), borderMode=cv2.BORDER_CONSTANT, borderValue=(10, 10, 10))
        moved = []
        for b in boxes:
            c = np.array([[b[1], b[2], 1], [b[3], b[2], 1], [b[1], b[4], 1], [b[3], b[4], 1]]) @ M.T
            moved.append([b[0], *c.min(axis=0), *c.max(axis=0), b[5]])
        return out, moved
    raise ValueError(f"unknown tampering kind {t.kind!r}")


def clip_box(box: tuple[float, float, float, float], W: int, H: int, min_visible: float = 0.3) -> Optional[tuple[float, float, float, float]]:
    """Clip a box to the frame; None when less than ``min_visible`` of it (or under 3 px) remains."""
    x1, y1, x2, y2 = box
    area = max(1e-6, (x2 - x1) * (y2 - y1))
    cx1, cy1, cx2, cy2 = max(0.0, x1), max(0.0, y1), min(float(W), x2), min(float(H), y2)
    if cx2 - cx1 < 3 or cy2 - cy1 < 3 or (cx2 - cx1) * (cy2 - cy1) / area < min_visible:
        return None
    return cx1, cy1, cx2, cy2
