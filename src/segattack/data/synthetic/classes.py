"""The Cityscapes train ids by name, as the scene painter uses them: ``ROAD`` is 0, ``SIDEWALK`` 1, ... ``BICYCLE`` 18.

They follow the order of ``segattack.data.labels.CLASS_NAMES``; the label image of a scene holds exactly these values
(no pixel is ignore).
"""

from __future__ import annotations

from ..labels import NUM_CLASSES

__all__ = [
    "ROAD", "SIDEWALK", "BUILDING", "WALL", "FENCE", "POLE", "LIGHT", "SIGN", "VEG", "TERRAIN", "SKY", "PERSON",
    "RIDER", "CAR", "TRUCK", "BUS", "TRAIN", "MOTORCYCLE", "BICYCLE",
]  # fmt: skip

(ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE, LIGHT, SIGN, VEG, TERRAIN, SKY, PERSON, RIDER, CAR, TRUCK, BUS, TRAIN,
 MOTORCYCLE, BICYCLE) = range(NUM_CLASSES)  # fmt: skip
