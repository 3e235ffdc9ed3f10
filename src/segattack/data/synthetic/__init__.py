"""Procedural street scenes in the Cityscapes label space: the embedded default data set.

Each scene is a view down a street from a car-mounted camera (pinhole, horizon inside the image): sky with clouds,
road in perspective with lane markings and crossings, sidewalks, building rows with windows, parks (terrain, trees),
walls and fences, poles, street lamps, traffic lights and signs, parked and moving cars, trucks, buses, trams,
bicycles and motorcycles with their riders, and pedestrians at every scale from about 10 px to most of the image
height, alone and in groups, partly hidden behind cars and poles. Objects are placed on the ground plane in metres
and projected, so farther objects are smaller and closer to the horizon, and everything scales with the image height:
the same scene looks the same at any resolution.

Pedestrians cannot be told apart by one trivial cue: clothing, hair and hat colours are drawn from a palette shared
with cars, buildings and vegetation, skin tones vary widely, sizes and poses (walking, standing, waving, phoning,
carrying bags and backpacks, coats and skirts, children) vary, and the view angle goes from front to back to side.

Image and label are painted with the very same masks, back to front (painter's order), so the label is exactly what
is drawn. Shading, shadows, texture, optical blur and sensor noise change only the image. No pixel is ignore (255).
Ground-truth instances (``SyntheticStreets.instance_ids``, ``render_scene_instances``: one id per person and per rider)
are painted the same way, so they agree with the label exactly, occlusion included.

A given texture (an adversarial patch) can be drawn into the scenes as a poster on a facade or a billboard beside the
road (``render_with_poster``, ``render_scene_with_poster``, ``SyntheticStreets(poster=...)``): in perspective, lit
and occluded like the surfaces around it, with its corners, visible pixels, distance and viewing angle
(``PosterInfo``). The poster draws from a random stream of its own, so each scene is the poster-free scene plus the
poster, and a scene without a poster is exactly what it was before posters existed.

A scene is a pure function of ``(seed, split, index)``: item ``i`` of split ``s`` draws from
``numpy.random.SeedSequence([seed, code(s), i])``, so ``train`` and ``val`` are disjoint random streams.
The geometry is in metres and the camera scales with the image height, so item ``i`` is the same scene at every
resolution of one aspect ratio (labels agree on about 98% of pixels between 128x256 and 256x512); different aspect
ratios see different slices of the street. Rendering takes about 15 ms per 256x512 image on one CPU core (Pillow's
ImageDraw for the shapes, numpy for shading and noise).

Modules: ``dataset`` (``SyntheticStreets``, seeding), ``scene`` (``render_scene``, the composition), ``geometry`` (the
camera), ``layout`` (the street's ground plan), ``lighting``, ``palette``, ``canvas``, ``sky``, ``ground``,
``buildings``, ``scenery``, ``vegetation``, ``street_furniture``, ``vehicles``, ``persons``, ``bikes``, ``figure``
(painting people and bikes), ``population`` (where objects go), ``image_effects`` (blur, shading, texture, noise),
``poster`` (posters and billboards).

>>> ds = SyntheticStreets("val", size=(64, 128), length=3)
>>> image, label = ds[0]
>>> image.dtype, tuple(image.shape), label.dtype, tuple(label.shape)
(torch.uint8, (3, 64, 128), torch.int64, (64, 128))
>>> ds.image_id(2)
'val_000002'
"""

from __future__ import annotations

from .canvas import Canvas as _Canvas  # noqa: F401  (the painting canvas, used directly by the tests)
from .dataset import SPLITS, SyntheticStreets, render_with_poster, scene_rng
from .poster import PLACEMENTS, PosterInfo
from .scene import render_scene, render_scene_instances, render_scene_with_poster

__all__ = [
    "PLACEMENTS",
    "PosterInfo",
    "SPLITS",
    "SyntheticStreets",
    "render_scene",
    "render_scene_instances",
    "render_scene_with_poster",
    "render_with_poster",
    "scene_rng",
]
