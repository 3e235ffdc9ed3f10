"""Where the objects on the street go: trees along the kerb, street lamps, signs and bollards, hedges, traffic lights
at the crossing, parked cars, traffic in every lane (cars, vans, trucks, buses, trams, cross traffic), pedestrians
alone and in groups on the sidewalks, crossing the road and by the kerb, cyclists and motorcyclists, parked bicycles.

Everything placed here is deferred (painted later in painter's order), except hedges, which are painted at once.
"""

from __future__ import annotations

import math

import numpy as np

from .bikes import add_bike
from .classes import VEG
from .palette import clip_colour
from .persons import add_person
from .sampling import pick
from .scenery import paint_low_band
from .street_furniture import add_pole
from .street_view import StreetView
from .vegetation import add_tree
from .vehicles import add_vehicle

__all__ = ["place_people", "place_vehicles", "populate"]


def populate(view: StreetView) -> None:
    """Place trees and street furniture along both kerbs, traffic lights at the crossing, then vehicles and people."""
    rng, layout = view.rng, view.layout
    crossing = layout.crossing
    for side in (-1, 1):
        grass, kerb = layout.grass(side), layout.kerb(side)
        # trees on the grass strip (or in the sidewalk)
        if grass > 0 or rng.random() < 0.4:
            x = kerb + side * (grass / 2 if grass > 0 else 0.8)
            z = rng.uniform(2.0, 14.0)
            step = rng.uniform(8.0, 18.0)
            while z < min(layout.street_end, 120):
                if crossing is None or not (crossing[0] - 2 < z < crossing[1] + 2):
                    add_tree(view, x + rng.normal(0, 0.2), z)
                z += step * rng.uniform(0.8, 1.2)
        # street lamps along the kerb
        if rng.random() < 0.7:
            z = rng.uniform(3.0, 20.0)
            step = rng.uniform(18.0, 35.0)
            lamp_col = clip_colour(np.array([90, 95, 100]) + rng.normal(0, 25, 3))
            while z < min(layout.street_end, 150):
                add_pole(view, kerb + side * 0.5, z, "lamp", side, lamp_col)
                z += step
        for _ in range(int(rng.integers(0, 3))):  # signs
            add_pole(
                view, kerb + side * 0.4, rng.uniform(view.camera.nearest_ground_z, 60.0), "sign", side, (120, 120, 125)
            )
        if rng.random() < 0.15:  # bollards
            z = rng.uniform(view.camera.nearest_ground_z * 0.8, 15)
            for _ in range(int(rng.integers(3, 10))):
                add_pole(view, kerb + side * 0.3, z, "bollard", side, clip_colour((70 + rng.uniform(0, 120),) * 3))
                z += rng.uniform(1.2, 2.5)
        if layout.kind(side) == "buildings" and rng.random() < 0.3:  # a hedge in front of the facade
            paint_low_band(view, side, layout.facade(side) + side * -0.4, VEG, rng.uniform(0.6, 1.4))
    if crossing is not None:  # traffic lights at the corners
        z_corner = crossing[0]
        for side in (-1, 1):
            if rng.random() < 0.8:
                add_pole(
                    view, layout.kerb(side) + side * 0.5, z_corner - rng.uniform(0.5, 2.5), "light", side, (70, 72, 75)
                )
        if rng.random() < 0.4:
            add_pole(view, layout.kerb_right + 0.5, crossing[1] + 1.0, "light", 1, (70, 72, 75))
    place_vehicles(view)
    place_people(view)


def place_people(view: StreetView) -> None:
    """Pedestrians (1 to 20, in groups of up to 4) up to 60 m away, cyclists and motorcyclists on the road, and
    parked bicycles, sometimes with their owner."""
    rng, camera, layout = view.rng, view.camera, view.layout
    z_max = 60.0
    log_near, log_far = np.log(max(camera.nearest_ground_z * 0.8, 2.5)), np.log(z_max)
    n = int(pick(rng, [1, 2, 3, 4, 6, 8, 10, 12, 15, 20], p=[0.04, 0.06, 0.08, 0.1, 0.14, 0.15, 0.14, 0.12, 0.1, 0.07]))
    placed = 0
    while placed < n:
        z = float(np.exp(rng.uniform(log_near, log_far)))
        where = rng.random()
        side = -1 if rng.random() < 0.5 else 1
        kerb, facade = layout.kerb(side), layout.facade(side)
        if where < 0.62:  # sidewalk (or park beyond it)
            if layout.kind(side) == "park" and rng.random() < 0.4:
                x = facade + side * rng.uniform(0.5, 15.0)
            else:
                x = rng.uniform(min(kerb, facade) + 0.4, max(kerb, facade) - 0.4)
            if rng.random() < 0.7:  # along the street, either way
                yaw = float(pick(rng, [0.0, math.pi])) + rng.normal(0, 0.35)
            else:
                yaw = rng.uniform(0, 6.3)
        elif where < 0.77:  # crossing the road, at the zebra or the crossing when there is one
            if layout.zebra is not None and rng.random() < 0.7:
                z = rng.uniform(*layout.zebra)
            elif layout.crossing is not None and rng.random() < 0.5:
                z = rng.uniform(layout.crossing[0] - 2, layout.crossing[0] + 1)
            x = rng.uniform(layout.kerb_left + 0.5, layout.kerb_right - 0.5)
            yaw = float(pick(rng, [-1.0, 1.0])) * math.pi / 2 + rng.normal(0, 0.3)
        elif where < 0.9:  # by the kerb, next to parked cars and poles
            x = kerb - side * rng.uniform(-0.6, 1.6)
            yaw = rng.uniform(0, 2 * math.pi)
        else:  # walking on the road side, near the edge
            x = kerb - side * rng.uniform(0.3, 1.0)
            yaw = float(pick(rng, [0.0, math.pi])) + rng.normal(0, 0.2)
        # off-screen at this depth (sidewalks leave the view near the camera): walk it away until it shows
        vis_l, vis_r = camera.visible_x(z, -0.3)
        if not vis_l < x < vis_r:
            if x > 0:
                z_shows = x * camera.focal / (camera.width - camera.centre_column)
            else:
                z_shows = -x * camera.focal / camera.centre_column
            z = max(z, 1.03 * z_shows)
        group = min(int(pick(rng, [1, 1, 1, 2, 2, 3, 4])), n - placed)
        for i in range(group):
            dx, dz = (0.0, 0.0) if i == 0 else (rng.normal(0, 0.6), rng.normal(0, 0.8))
            member_yaw = yaw + (rng.normal(0, 0.3) if i else 0.0)
            add_person(view, x + dx, max(z + dz, 1.0), member_yaw)
        placed += group
    for _ in range(int(pick(rng, [0, 0, 1, 1, 2, 3]))):  # cyclists and motorcyclists
        moto = rng.random() < 0.25
        if rng.random() < 0.7:  # along the street: by the kerb (bicycles) or in a lane (motorcycles)
            side = -1 if rng.random() < 0.5 else 1
            if side < 0:
                x = layout.kerb_left + 0.9 + layout.parking_left
            else:
                x = layout.kerb_right - 0.9 - layout.parking_right
            if moto:
                x = float(pick(rng, layout.lane_centres))
            yaw = float(pick(rng, [0.0, math.pi])) + rng.normal(0, 0.15)
        else:  # across the road
            x = rng.uniform(layout.kerb_left, layout.kerb_right)
            yaw = float(pick(rng, [-1.0, 1.0])) * math.pi / 2 + rng.normal(0, 0.3)
        z = float(np.exp(rng.uniform(np.log(max(camera.nearest_ground_z, 3.0)), np.log(60.0))))
        add_bike(view, x, z, yaw, rider=True, moto=moto)
    for _ in range(int(pick(rng, [0, 0, 0, 1, 2, 3]))):  # parked bicycles, sometimes with their owner
        side = -1 if rng.random() < 0.5 else 1
        x = layout.kerb(side) + side * rng.uniform(0.4, 1.5)
        z = rng.uniform(camera.nearest_ground_z * 0.9, 40.0)
        yaw = rng.uniform(0, 2 * math.pi)
        add_bike(view, x, z, yaw, rider=False, moto=rng.random() < 0.2)
        if rng.random() < 0.3:
            add_person(view, x + side * 0.6, z + rng.normal(0, 0.3), yaw + rng.normal(0, 0.4))


def place_vehicles(view: StreetView) -> None:
    """Parked cars and vans on the parking lanes, traffic in every lane (oncoming on the left lanes), sometimes a
    tram on the middle lane, and cross traffic on the crossing; kept clear of the crossing and the zebra."""
    rng, camera, layout = view.rng, view.camera, view.layout
    crossing, zebra = layout.crossing, layout.zebra
    for side in (-1, 1):  # parked cars
        if layout.parking(side) == 0:
            continue
        x = (layout.kerb_left + 1.1) if side < 0 else (layout.kerb_right - 1.1)
        z = rng.uniform(camera.nearest_ground_z * 0.5, 12.0)
        while z < 75:
            if rng.random() < 0.75 and (crossing is None or not (crossing[0] - 8 < z < crossing[1] + 3)):
                if zebra is None or not (zebra[0] - 6 < z < zebra[1] + 2):
                    kind = "car" if rng.random() < 0.92 else "van"
                    add_vehicle(
                        view, x + rng.normal(0, 0.1), z, float(pick(rng, [0.0, math.pi])) + rng.normal(0, 0.03), kind
                    )
            z += rng.uniform(5.0, 8.0)
    for lane_x in layout.lane_centres:  # traffic
        oncoming = lane_x < -0.5 and rng.random() < 0.7
        z = rng.uniform(6.0, 25.0)
        while z < 100:
            if rng.random() < 0.55 and (zebra is None or not (zebra[0] - 4 < z < zebra[1] + 6)):
                u = rng.random()
                kind = "car" if u < 0.8 else ("truck" if u < 0.88 else ("bus" if u < 0.96 else "van"))
                yaw = (math.pi if oncoming else 0.0) + rng.normal(0, 0.02)
                add_vehicle(view, lane_x + rng.normal(0, 0.25), z, yaw, kind)
                z += 15.0 if kind in ("truck", "bus") else 0.0
            z += rng.uniform(7.0, 25.0)
    if rng.random() < 0.06:  # tram on the middle lane
        middle = layout.lane_centres[len(layout.lane_centres) // 2]
        add_vehicle(view, middle, rng.uniform(15.0, 60.0), float(pick(rng, [0.0, math.pi])), "tram")
    if crossing is not None and rng.random() < 0.5:  # traffic across the crossing
        z1, z2 = crossing
        for _ in range(int(rng.integers(1, 3))):
            z = rng.uniform(z1 + 2, z2 - 2)
            add_vehicle(view, rng.uniform(-25.0, 25.0), z, float(pick(rng, [-1.0, 1.0])) * math.pi / 2, "car")
