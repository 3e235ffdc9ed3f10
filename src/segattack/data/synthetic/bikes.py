"""Bicycles and motorcycles, ridden or parked: their parts (wheels, frame tubes or a body, handlebars, saddle) and the
seated rider's skeleton with hands on the bars and feet on the pedals or pegs.

Riders are labelled rider, the bike bicycle or motorcycle; riders of motorcycles always wear helmets, cyclists
sometimes. ``add_bike`` defers one; ``figure.draw_figure`` paints it.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from .classes import RIDER
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
    Part,
    draw_figure,
)  # fmt: skip
from .geometry import FloatArray, limb_joint
from .palette import Color, shared_colour
from .persons import sample_look
from .street_view import StreetView

__all__ = ["add_bike", "sample_bike"]


def add_bike(view: StreetView, x: float, z: float, yaw: float, rider: bool, moto: bool) -> None:
    """Defer a bicycle (or motorcycle when ``moto``) at (x, z) heading ``yaw``, with its rider when ``rider``."""
    rng = view.rng
    scale = rng.normal(1.74, 0.07) / 1.75  # the rider's height / 1.75 m
    look = sample_look(rng, False)
    if moto:
        look.hat = None
        look.helmet = shared_colour(rng, 10)
    elif rng.random() < 0.4:
        look.helmet = shared_colour(rng, 10)
    look.coat = look.skirt = False
    frame = shared_colour(rng, 15)
    joints, parts = sample_bike(rng, scale, moto, frame, rider)
    draw = partial(draw_figure, view, x, z, yaw, joints, look, scale, RIDER, parts, rider)
    view.defer(math.hypot(x, z) - 0.6, draw)


def sample_bike(
    rng: np.random.Generator, scale: float, moto: bool, frame: Color, rider: bool
) -> tuple[FloatArray, list[Part]]:
    """Bicycle/motorcycle parts in the figure frame and the seated rider's skeleton (metres; zeros without a rider).

    Points of the side view are (forward, up) pairs here; parts and joints are (lateral, up, forward).
    """
    tyre = (25, 25, 25)
    parts: list[Part] = []
    if moto:
        wheel_radius, rear, front = 0.31, -0.7, 0.72
        seat, peg, bar = (-0.15, 0.8), (0.05, 0.35), (0.48, 1.02)
        parts.append(("wheel", [(0.0, wheel_radius, rear)], 0.11, tyre))
        parts.append(("wheel", [(0.0, wheel_radius, front)], 0.11, tyre))
        body = [(-0.55, 0.5), (0.3, 0.4), (0.55, 0.75), (0.35, 0.98), (-0.2, 0.88), (-0.65, 0.82)]
        parts.append(("body", [(a, b, c) for c, b in body for a in (-0.18, 0.18)], 0.0, frame))
        parts.append(("line", [(0.0, wheel_radius, front), (0.0, 1.0, 0.45)], 0.06, (60, 60, 60)))  # fork
        parts.append(("line", [(-0.32, bar[1], bar[0]), (0.32, bar[1], bar[0])], 0.04, (40, 40, 40)))  # handlebar
        hip_up, hip_forward = seat[1] + 0.1, seat[0]
        pedals = [(-0.2, peg[1], peg[0]), (0.2, peg[1], peg[0])]
        lean = rng.uniform(0.2, 0.55)
    else:
        wheel_radius, rear, front = 0.34, -0.5, 0.52
        bracket, seat, bar = (-0.05, 0.3), (-0.24, 0.95), (0.38, 1.0)  # bottom bracket, saddle, handlebar
        for c in (rear, front):
            parts.append(("wheel", [(0.0, wheel_radius, c)], 0.05, tyre))
        head_tube = (0.36, 0.92)
        for (c1, b1), (c2, b2) in (
            ((rear, wheel_radius), bracket),
            ((rear, wheel_radius), seat),
            (seat, bracket),
            (bracket, head_tube),
            (seat, head_tube),
            (head_tube, (front, wheel_radius)),
        ):
            parts.append(("line", [(0.0, b1, c1), (0.0, b2, c2)], 0.04, frame))
        saddle = [(0.0, seat[1], seat[0] - 0.1), (0.0, seat[1] + 0.02, seat[0] + 0.12)]
        parts.append(("line", saddle, 0.06, (30, 30, 30)))
        parts.append(("line", [(-0.25, bar[1], bar[0]), (0.25, bar[1], bar[0])], 0.035, (40, 40, 40)))
        parts.append(("line", [(0.0, head_tube[1], head_tube[0]), (0.0, bar[1], bar[0])], 0.04, frame))
        hip_up, hip_forward = seat[1] + 0.07, seat[0]
        crank = rng.uniform(0, 2 * math.pi)
        crank_forward, crank_up = 0.17 * math.cos(crank), 0.17 * math.sin(crank)
        pedals = [
            (-0.12, bracket[1] + crank_up, bracket[0] + crank_forward),
            (0.12, bracket[1] - crank_up, bracket[0] - crank_forward),
        ]
        lean = rng.uniform(0.25, 0.8)
    joints = np.zeros((N_JOINTS, 3))
    if not rider:
        return joints, parts
    joints[HIP_L], joints[HIP_R] = (-0.09, hip_up, hip_forward), (0.09, hip_up, hip_forward)
    joints[FOOT_L], joints[FOOT_R] = pedals[0], pedals[1]
    joints[KNEE_L] = limb_joint(joints[HIP_L], joints[FOOT_L], 0.45 * scale, 0.47 * scale, 1.0)
    joints[KNEE_R] = limb_joint(joints[HIP_R], joints[FOOT_R], 0.45 * scale, 0.47 * scale, 1.0)
    shoulder_forward = hip_forward + 0.52 * scale * math.sin(lean)
    shoulder_up = hip_up + 0.52 * scale * math.cos(lean)
    joints[SHOULDER_L], joints[SHOULDER_R] = (
        (-0.19 * scale, shoulder_up, shoulder_forward),
        (0.19 * scale, shoulder_up, shoulder_forward),
    )
    joints[NECK] = (0.0, shoulder_up + 0.06 * scale, shoulder_forward + 0.03)
    joints[HEAD] = (0.0, shoulder_up + 0.19 * scale, shoulder_forward + 0.19 * scale * math.sin(lean * 0.6) + 0.03)
    for side, shoulder, elbow, hand in ((-1, SHOULDER_L, ELBOW_L, HAND_L), (1, SHOULDER_R, ELBOW_R, HAND_R)):
        grip = np.array([side * 0.24, bar[1] + 0.02, bar[0]])
        joints[hand] = grip
        joints[elbow] = (joints[shoulder] + grip) / 2 + np.array([side * 0.05, -0.08, -0.02])
    return joints, parts
