"""Pedestrians: random looks (skin, clothing, hair, hats, coats and skirts, backpacks and bags, children) and poses
(walking or standing; arms swinging, hanging, phoning, waving, on the hips or in the pockets).

Colours come from the palette shared with cars, buildings and vegetation, so no single cue gives a person away.
``add_person`` defers a pedestrian; ``figure.draw_figure`` paints it.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from .classes import PERSON
from .figure import (
    ELBOW_L,
    ELBOW_R,
    FOOT_L,
    FOOT_R,
    HAND_L,
    HAND_R,
    HEAD,
    HIP_L,
    HIP_R,
    KNEE_L,
    KNEE_R,
    N_JOINTS,
    NECK,
    SHOULDER_L,
    SHOULDER_R,
    Look,
    draw_figure,
)  # fmt: skip
from .geometry import FloatArray, limb_joint
from .palette import HAIR_COLOURS, SKIN_TONES, clip_colour, mix_colours, shared_colour
from .sampling import pick
from .street_view import StreetView

__all__ = ["add_person", "sample_look", "sample_pose"]

#: Trouser and skirt colours besides the shared palette: denim, black, grey, khaki, light denim.
TROUSER_COLOURS = [(40, 55, 90), (25, 25, 30), (95, 95, 100), (150, 130, 95), (60, 80, 120)]
#: Arm poses of a standing figure (or of one arm of a walking one), and how often each occurs.
ARM_STYLES = ["swing", "down", "phone", "ear", "wave", "hips", "pocket"]
ARM_STYLE_WEIGHTS = [0.35, 0.3, 0.1, 0.05, 0.05, 0.07, 0.08]


def add_person(view: StreetView, x: float, z: float, yaw: float) -> None:
    """Defer a pedestrian (adult or child) standing at (x, z), facing ``yaw`` (0: away from the camera)."""
    rng = view.rng
    child = rng.random() < 0.12
    height = rng.uniform(1.0, 1.4) if child else rng.normal(1.72, 0.09)
    look = sample_look(rng, child)
    pose = sample_pose(rng, height / 1.75)
    draw = partial(draw_figure, view, x, z, yaw, pose, look, height / 1.75, PERSON, [])
    view.defer(math.hypot(x, z) - 0.2, draw)


def sample_look(rng: np.random.Generator, child: bool) -> Look:
    """A random appearance; children wear no coats."""
    skin_pos = rng.uniform(0, len(SKIN_TONES) - 1)  # between two neighbouring tones
    lo = int(skin_pos)
    skin = mix_colours(SKIN_TONES[lo], SKIN_TONES[min(lo + 1, len(SKIN_TONES) - 1)], skin_pos - lo)
    top = shared_colour(rng, 22)
    if rng.random() < 0.5:
        bottom = shared_colour(rng, 15)
    else:
        bottom = clip_colour(np.asarray(TROUSER_COLOURS[int(rng.integers(5))]) + rng.normal(0, 10, 3))
    hair = clip_colour(np.asarray(HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))]) + rng.normal(0, 8, 3))
    garment = rng.random()  # coat, skirt or neither
    return Look(  # the keyword arguments are evaluated, and so drawn, in this order
        skin=skin,
        top=top,
        bottom=bottom,
        hair=hair,
        shoes=shared_colour(rng, 10) if rng.random() < 0.4 else (30, 28, 26),
        short_sleeves=rng.random() < 0.25,
        shorts=rng.random() < 0.12,
        coat=(not child) and garment < 0.22,
        skirt=0.22 <= garment < 0.34,
        hat=shared_colour(rng, 15) if rng.random() < 0.18 else None,
        long_hair=rng.random() < 0.3,
        backpack=shared_colour(rng, 12) if rng.random() < 0.2 else None,
        bag=shared_colour(rng, 12) if rng.random() < 0.2 else None,
        child=child,
        width=rng.uniform(0.9, 1.2),
    )


def sample_pose(rng: np.random.Generator, scale: float) -> FloatArray:
    """Standing or walking skeleton, (14, 3) metres (lateral, up, forward), feet at the origin, for a body of
    ``scale`` times 1.75 m."""
    joints = np.zeros((N_JOINTS, 3))
    walking = rng.random() < 0.6
    lean = rng.uniform(-0.02, 0.06)
    if walking:
        phase, stride = rng.uniform(0, 2 * math.pi), rng.uniform(0.1, 0.4)
        step = stride * math.sin(phase)  # forward offset of the left foot (the right one is opposite)
        feet = ((-0.1, step), (0.1, -step))
    else:
        spread = rng.uniform(0.05, 0.22)
        feet = ((-spread, rng.normal(0, 0.05)), (spread, rng.normal(0, 0.05)))
    joints[HIP_L], joints[HIP_R] = (-0.09, 0.93, 0.0), (0.09, 0.93, 0.0)
    joints[FOOT_L], joints[FOOT_R] = (feet[0][0], 0.06, feet[0][1]), (feet[1][0], 0.06, feet[1][1])
    joints[KNEE_L] = limb_joint(joints[HIP_L], joints[FOOT_L], 0.45, 0.44, 1.0)
    joints[KNEE_R] = limb_joint(joints[HIP_R], joints[FOOT_R], 0.45, 0.44, 1.0)
    joints[SHOULDER_L], joints[SHOULDER_R] = (-0.19, 1.44, lean), (0.19, 1.44, lean)
    joints[NECK] = (0.0, 1.5, lean)
    joints[HEAD] = (rng.normal(0, 0.01), 1.63, lean + 0.02)
    for side, elbow, hand, foot in ((-1, ELBOW_L, HAND_L, FOOT_L), (1, ELBOW_R, HAND_R, FOOT_R)):
        style = "swing"
        if not walking or rng.random() < 0.3:
            style = str(pick(rng, ARM_STYLES, p=ARM_STYLE_WEIGHTS))
        if style == "swing":  # the hand swings opposite to the foot of its side
            hand_forward = -0.7 * joints[foot, 2]
            hand_at, elbow_at = (side * 0.23, 0.8, hand_forward), (side * 0.22, 1.12, hand_forward * 0.45 - 0.03)
        elif style == "down":
            hand_at, elbow_at = (side * 0.24, 0.78, 0.02), (side * 0.23, 1.1, -0.02)
        elif style == "phone":
            hand_at, elbow_at = (side * 0.06, 1.2, 0.25), (side * 0.2, 1.08, 0.08)
        elif style == "ear":
            hand_at, elbow_at = (side * 0.13, 1.6, 0.08), (side * 0.28, 1.3, 0.12)
        elif style == "wave":
            hand_at, elbow_at = (side * 0.42, 1.88, 0.05), (side * 0.36, 1.55, 0.0)
        elif style == "hips":
            hand_at, elbow_at = (side * 0.2, 0.97, 0.02), (side * 0.4, 1.15, -0.05)
        else:  # pocket
            hand_at, elbow_at = (side * 0.18, 0.9, 0.06), (side * 0.24, 1.12, -0.03)
        joints[hand], joints[elbow] = hand_at, elbow_at
    return joints * scale
