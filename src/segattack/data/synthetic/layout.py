"""The street's layout on the ground plane: lanes, parking lanes, kerbs, grass strips, sidewalks, facade planes, what
lines each side (buildings, a park or a wall), where the street ends, and an optional cross street and zebra crossing.

All positions are in metres: ``x`` lateral from the camera (left negative), ``z`` forward along the street. Methods
that take a ``side`` want -1 for the left side of the street and +1 for the right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .sampling import pick

__all__ = ["StreetLayout"]


@dataclass
class StreetLayout:
    """One street's ground plan (metres).

    ``lane_centres`` are the lanes' centre lines; ``kerb_left``/``kerb_right`` the road edges (parking lanes
    included); ``grass_*`` the widths of grass strips between road and sidewalk (0: none); ``sidewalk_*`` the
    sidewalks' widths; ``facade_*`` the lateral positions of the facade planes; ``*_kind`` one of "buildings",
    "park", "wall"; ``street_end`` the depth of the frontal skyline; ``crossing`` the (near, far) depths of a cross
    street and ``zebra`` those of a zebra crossing, or None.
    """

    lane_width: float
    n_lanes: int
    lane_centres: list[float]
    parking_left: float
    parking_right: float
    kerb_left: float
    kerb_right: float
    grass_left: float
    grass_right: float
    sidewalk_left: float
    sidewalk_right: float
    facade_left: float
    facade_right: float
    left_kind: str
    right_kind: str
    street_end: float
    crossing: tuple[float, float] | None
    zebra: tuple[float, float] | None

    @classmethod
    def sample(cls, rng: np.random.Generator) -> StreetLayout:
        """A random street; the camera's car drives in one of its lanes."""
        lane_width = rng.uniform(2.8, 3.6)
        n_lanes = int(pick(rng, [1, 2, 2, 2, 3, 4]))
        ego_lane = int(rng.integers(n_lanes))
        shift = rng.uniform(-0.5, 0.5)
        parking_left = 2.2 if rng.random() < 0.6 else 0.0
        parking_right = 2.2 if rng.random() < 0.6 else 0.0
        kerb_left = -(ego_lane + 0.5) * lane_width + shift - parking_left
        kerb_right = (n_lanes - ego_lane - 0.5) * lane_width + shift + parking_right
        lane_centres = [-(ego_lane + 0.5) * lane_width + shift + (i + 0.5) * lane_width for i in range(n_lanes)]
        grass_left = rng.uniform(1.0, 2.5) if rng.random() < 0.25 else 0.0  # grass strip between road and sidewalk
        grass_right = rng.uniform(1.0, 2.5) if rng.random() < 0.25 else 0.0
        sidewalk_left = rng.uniform(2.0, 5.5)
        sidewalk_right = rng.uniform(2.0, 5.5)
        facade_left = kerb_left - grass_left - sidewalk_left
        facade_right = kerb_right + grass_right + sidewalk_right
        left_kind = str(pick(rng, ["buildings", "park", "wall"], p=[0.72, 0.16, 0.12]))
        right_kind = str(pick(rng, ["buildings", "park", "wall"], p=[0.72, 0.16, 0.12]))
        street_end = rng.uniform(70.0, 260.0)
        crossing: tuple[float, float] | None = None
        if rng.random() < 0.45:
            near = rng.uniform(12.0, 45.0)
            crossing = (near, near + rng.uniform(9.0, 16.0))
        zebra: tuple[float, float] | None = None
        if crossing is not None and rng.random() < 0.7:
            zebra = (crossing[0] - 4.5, crossing[0] - 0.5)
        elif rng.random() < 0.25:
            near = rng.uniform(8.0, 35.0)
            zebra = (near, near + 4.0)
        return cls(
            lane_width=lane_width,
            n_lanes=n_lanes,
            lane_centres=lane_centres,
            parking_left=parking_left,
            parking_right=parking_right,
            kerb_left=kerb_left,
            kerb_right=kerb_right,
            grass_left=grass_left,
            grass_right=grass_right,
            sidewalk_left=sidewalk_left,
            sidewalk_right=sidewalk_right,
            facade_left=facade_left,
            facade_right=facade_right,
            left_kind=left_kind,
            right_kind=right_kind,
            street_end=street_end,
            crossing=crossing,
            zebra=zebra,
        )

    def kerb(self, side: int) -> float:
        """Lateral position of the road edge on ``side``."""
        return self.kerb_left if side < 0 else self.kerb_right

    def facade(self, side: int) -> float:
        """Lateral position of the facade plane on ``side``."""
        return self.facade_left if side < 0 else self.facade_right

    def grass(self, side: int) -> float:
        """Width of the grass strip between road and sidewalk on ``side`` (0: none)."""
        return self.grass_left if side < 0 else self.grass_right

    def parking(self, side: int) -> float:
        """Width of the parking lane on ``side`` (0: none)."""
        return self.parking_left if side < 0 else self.parking_right

    def kind(self, side: int) -> str:
        """What lines ``side``: "buildings", "park" or "wall"."""
        return self.left_kind if side < 0 else self.right_kind
