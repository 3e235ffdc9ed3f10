"""Tests for posters in the synthetic street scenes (segattack.data.synthetic.poster): a given texture (a patch) drawn
into a scene as a facade poster or a billboard, lit and occluded, with its metadata; scenes without a poster unchanged.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.stats import spearmanr

from segattack.data.labels import CLASS_NAMES
from segattack.data.synthetic import (
    PosterInfo,
    SyntheticStreets,
    _Canvas,
    render_scene,
    render_scene_instances,
    render_scene_with_poster,
    render_with_poster,
    scene_rng,
)
from segattack.data.synthetic.geometry import Camera
from segattack.data.synthetic.layout import StreetLayout
from segattack.data.synthetic.lighting import Lighting
from segattack.data.synthetic.poster import paint_texture
from segattack.data.synthetic.street_view import StreetView
from segattack.errors import ConfigError, InputError, InputTypeError

BUILDING, POLE, PERSON = (CLASS_NAMES.index(n) for n in ("building", "pole", "person"))
SIZE = (64, 128)  # under about 140 rows the scenes have no optical blur: a pixel's colour is its own


def solid(r: float, g: float, b: float, h: int = 8, w: int = 12) -> np.ndarray:
    """A (3, h, w) float32 texture of one colour."""
    return np.broadcast_to(np.array([r, g, b], np.float32)[:, None, None], (3, h, w)).copy()


RED, GREEN, MAGENTA = solid(1, 0, 0), solid(0, 1, 0), solid(1, 0, 1)


def render(index: int, texture: np.ndarray, placement: str, size: tuple[int, int] = SIZE, split: str = "val"):
    image, label, info, _ = render_scene_with_poster(scene_rng(0, split, index), texture, size, placement=placement)
    return image, label, info


# SHA-256 over image, label and instance-id bytes of val items 0..39 at 64x128 (seed 0), computed with the generator
# before posters existed (commit aa440d5). A scene without a poster must stay bit-identical: shipped models and the
# pinned hashes of test_synthetic.py depend on it.
PINNED_VAL_64X128_WITH_INSTANCES = "bd8f88d53a02afd3ab4237ace73c714575fc411b1a9009f0591d852a29e16eec"


def test_scenes_without_a_poster_are_bit_identical_to_those_before_posters() -> None:
    ds = SyntheticStreets("val", size=SIZE, length=40, seed=0)
    digest = hashlib.sha256()
    for i in range(len(ds)):
        image, label = ds.render(i)
        digest.update(image.tobytes())
        digest.update(label.tobytes())
        digest.update(ds.instance_ids(i).tobytes())
    assert digest.hexdigest() == PINNED_VAL_64X128_WITH_INSTANCES


def test_a_scene_without_a_poster_is_the_same_whether_or_not_posters_were_drawn_before() -> None:
    render_scene_with_poster(3, RED, SIZE)  # painting a poster leaves no state behind (noise bank, canvas, ...)
    image, label = render_scene(3, SIZE)
    image_i, label_i, _ = render_scene_instances(3, SIZE)
    assert np.array_equal(image, image_i) and np.array_equal(label, label_i)
    again, again_label = SyntheticStreets("val", SIZE, length=4, poster=None)[3]
    plain, plain_label = SyntheticStreets("val", SIZE, length=4)[3]
    assert torch.equal(again, plain) and torch.equal(again_label, plain_label)


def test_a_facade_poster_changes_only_its_visible_pixels_of_the_scene_without_it() -> None:
    checked = 0
    for i in range(12):
        image, label, info = render(i, MAGENTA, "building")
        if info.placement != "building":
            continue  # a street without a facade for it: a billboard (tested below)
        clean, clean_label = SyntheticStreets("val", SIZE, length=12)[i]
        changed = (image != clean.permute(1, 2, 0).numpy()).any(-1)
        assert np.array_equal(label, clean_label.numpy())  # a facade poster is building on building
        assert not (changed & ~info.visible).any()  # nothing outside the visible poster changes
        assert changed[info.visible].all()  # and all of it does (magenta is no facade colour)
        checked += int(info.visible.any())
    assert checked >= 6


def test_a_billboard_changes_only_its_own_pixels_of_the_scene_without_it() -> None:
    checked = 0
    for i in range(8):
        image, label, info = render(i, MAGENTA, "billboard")
        clean, clean_label = SyntheticStreets("val", SIZE, length=8)[i]
        changed = (image != clean.permute(1, 2, 0).numpy()).any(-1) | (label != clean_label.numpy())
        own = info.visible | np.isin(label, [BUILDING, POLE])  # the poster, its frame (building) and legs (pole)
        assert not (changed & ~own).any()
        assert changed[info.visible].all()
        checked += int(info.visible.any())
    assert checked >= 6


@pytest.mark.parametrize("placement", ["building", "billboard"])
def test_two_textures_differ_exactly_on_the_visible_mask_and_show_their_colour(placement: str) -> None:
    seen = 0
    for i in range(10):
        red_image, red_label, red_info = render(i, RED, placement)
        green_image, green_label, green_info = render(i, GREEN, placement)
        assert np.array_equal(red_label, green_label)
        assert np.array_equal(red_info.corners, green_info.corners)  # the content does not move the poster
        assert np.array_equal(red_info.visible, green_info.visible)
        visible = red_info.visible
        changed = (red_image != green_image).any(-1)
        assert np.array_equal(changed, visible)
        # the colour shows through light, haze, exposure and noise: red stays red, green stays green
        r, g = red_image[visible].astype(int), green_image[visible].astype(int)
        assert (r[:, 0] > r[:, 1] + 30).all() and (r[:, 0] > r[:, 2] + 30).all()
        assert (g[:, 1] > g[:, 0] + 30).all() and (g[:, 1] > g[:, 2] + 30).all()
        assert (red_label[visible] == BUILDING).all()
        seen += int(visible.sum())
    assert seen > 200


def test_with_optical_blur_a_poster_changes_pixels_at_most_one_pixel_beyond_its_visible_mask() -> None:
    size = (160, 320)  # blurred (radius 0.34 px)
    spread = 0
    for i in (0, 1, 2):
        red_image, _, info = render(i, RED, "billboard", size)
        green_image, _, _ = render(i, GREEN, "billboard", size)
        changed = (red_image != green_image).any(-1)
        assert changed[info.visible].all()
        assert not (changed & ~ndimage.binary_dilation(info.visible, np.ones((3, 3), bool))).any()
        spread += int((changed & ~info.visible).sum())
    assert spread > 0  # the blur does spread it: the bound above is not vacuous


@pytest.mark.parametrize(("index", "placement"), [(22, "billboard"), (15, "building")])
def test_persons_in_front_hide_the_poster(index: int, placement: str) -> None:
    image, label, info = render(index, MAGENTA, placement)
    assert info.placement == placement
    hidden = info.painted & (label == PERSON)
    assert hidden.sum() >= 10  # this scene has persons standing in front of the poster
    assert not (info.visible & (label == PERSON)).any()
    assert np.array_equal(info.visible, info.painted & (label == BUILDING) & info.visible)
    assert not (info.visible & ~info.painted).any()
    # a person's pixel shows the person, not the poster: the same colour as with a green poster
    green_image, _, _ = render(index, GREEN, placement)
    assert np.array_equal(image[hidden], green_image[hidden])


def test_the_canvas_poster_layer_is_cleared_by_every_later_primitive() -> None:
    canvas = _Canvas(20, 30, (0, 0, 0))
    canvas.poly([(0, 0), (29, 0), (29, 19), (0, 19)], (10, 10, 10), BUILDING)  # painted before: no effect
    mask = np.zeros((10, 20), bool)
    mask[2:8, 3:17] = True
    canvas.paint_pixels(5, 5, np.full((10, 20, 3), 200, np.uint8), mask, BUILDING, poster=True)
    assert canvas.poster_visible().sum() == mask.sum()
    canvas.poly([(8, 7), (12, 7), (12, 11), (8, 11)], (1, 2, 3), PERSON)  # labelled
    canvas.line([(20, 8), (20, 12)], 1, (9, 9, 9))  # image only: a detail also covers the poster
    visible = canvas.poster_visible()
    label, image = np.asarray(canvas.label), np.asarray(canvas.image)
    assert not visible[label == PERSON].any() and (label == PERSON).sum() == 25
    assert not visible[8:13, 20].any() and visible[7, 20] and visible[12, 21]
    assert (image[visible] == 200).all() and (label[visible] == BUILDING).all()
    assert visible.sum() == mask.sum() - 25 - 5


@pytest.mark.parametrize("object_light", [1.0, 0.6])
def test_poster_colours_take_the_face_light_the_haze_and_the_shade(object_light: float) -> None:
    camera = Camera(64, 128, focal=100.0, mount_height=1.5, horizon_row=30.0, centre_column=64.0)
    sun = -math.pi / 6  # a face looking back at the camera (normal -z) gets light 0.62 + 0.38 * 0.5
    lighting = Lighting(True, sun, 255, 0, 0.0, 150, fog_distance=200.0)
    haze = (200, 210, 40)
    canvas = _Canvas(64, 128, (0, 0, 0))
    view = StreetView(np.random.default_rng(0), camera, StreetLayout.sample(np.random.default_rng(0)), lighting,
                      canvas, haze)  # fmt: skip
    view.object_light = object_light  # inside the buildings' shade (a billboard's light)
    z, right, normal = 20.0, np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])
    corners = np.array([[-1.0, 3.0, z], [1.0, 3.0, z], [1.0, 1.0, z], [-1.0, 1.0, z]])  # 2 x 2 m, head-on
    colour = np.array([0.9, 0.5, 0.1], np.float32)
    painted = paint_texture(view, np.broadcast_to(colour, (4, 6, 3)).copy(), corners, right, normal, 2.0, 2.0)
    assert lighting.face_light(0.0, -1.0) == pytest.approx(0.81)
    fade = 1.0 - math.exp(-z / 200.0)
    expected = (colour * 255 * 0.81 * (1 - fade) + np.array(haze) * fade) * object_light
    pixels = np.asarray(canvas.image)[painted]
    assert np.abs(pixels - expected).max() <= 0.5 + 1e-9  # rounded once
    assert painted.sum() == 10 * 10  # 2 m at 20 m with a focal length of 100 px: 10 x 10 pixels
    assert (np.asarray(canvas.label)[painted] == BUILDING).all() and canvas.poster_visible().sum() == 100


def test_corners_metadata_and_painted_pixels_agree() -> None:
    for i in range(6):
        _, _, info = render(i, RED, "billboard", (128, 256))
        camera = Camera.sample(scene_rng(0, "val", i), 128, 256)  # the scene's camera: its first draws
        projected = np.array([camera.project(*p) for p in info.corners_world])
        np.testing.assert_allclose(info.corners, projected)
        eye = np.array([0.0, camera.mount_height, 0.0])
        assert info.distance == pytest.approx(float(np.linalg.norm(info.centre - eye)))
        cos_angle = float(np.dot(info.normal, eye - info.centre)) / info.distance
        assert info.angle == pytest.approx(math.degrees(math.acos(cos_angle)))
        assert 0.0 <= info.angle < 90.0  # its printed face is towards the camera
        width, height = info.size
        assert np.linalg.norm(info.corners_world[1] - info.corners_world[0]) == pytest.approx(width)
        assert np.linalg.norm(info.corners_world[3] - info.corners_world[0]) == pytest.approx(height)
        assert height / width == pytest.approx(8 / 12)  # the texture's aspect ratio is kept
        # all of it is in the image (billboards are placed so): the painted count is the quad's area
        u, v = info.corners[:, 0], info.corners[:, 1]
        assert u.min() >= 0 and v.min() >= 0 and u.max() <= 255 and v.max() <= 127
        perimeter = float(np.linalg.norm(info.corners - np.roll(info.corners, 1, axis=0), axis=1).sum())
        assert abs(int(info.painted.sum()) - info.area) <= perimeter / 2 + 2
        rows, cols = np.nonzero(info.painted)
        assert cols.min() >= math.floor(u.min()) and cols.max() <= math.ceil(u.max())
        assert rows.min() >= math.floor(v.min()) and rows.max() <= math.ceil(v.max())


def homography(corners: np.ndarray) -> np.ndarray:
    """The 3x3 map from texture coordinates (s, t) in the unit square to image (u, v) that takes the corners of the
    square (top-left, top-right, bottom-right, bottom-left) to ``corners`` (4, 2)."""
    rows = []
    for (s, t), (u, v) in zip([(0, 0), (1, 0), (1, 1), (0, 1)], corners, strict=True):
        rows.append([s, t, 1, 0, 0, 0, -u * s, -u * t, u])
        rows.append([0, 0, 0, s, t, 1, -v * s, -v * t, v])
    a = np.array(rows, float)
    return np.append(np.linalg.solve(a[:, :8], a[:, 8]), 1.0).reshape(3, 3)


def test_the_texture_is_mapped_in_perspective_upright_and_unmirrored() -> None:
    quadrants = np.zeros((3, 8, 16), np.float32)
    quadrants[0, :4, :8] = 1.0  # top left red
    quadrants[1, :4, 8:] = 1.0  # top right green
    quadrants[2, 4:, :] = 1.0  # bottom blue
    counted = 0
    for i in range(4):
        image, _, info = render(i, quadrants, "billboard", (128, 256))
        to_texture = np.linalg.inv(homography(info.corners))
        rows, cols = np.nonzero(info.painted)
        st = to_texture @ np.stack([cols, rows, np.ones_like(cols)]).astype(float)
        s, t = st[0] / st[2], st[1] / st[2]
        assert s.min() > -0.02 and s.max() < 1.02 and t.min() > -0.02 and t.max() < 1.02  # inside the quad
        rows, cols = np.nonzero(info.visible)
        st = to_texture @ np.stack([cols, rows, np.ones_like(cols)]).astype(float)
        s, t = st[0] / st[2], st[1] / st[2]
        rgb = image[rows, cols].astype(int)
        red = (s < 0.4) & (t < 0.4)
        green = (s > 0.6) & (t < 0.4)
        blue = t > 0.6
        assert (rgb[red, 0] > rgb[red, 1:].max(1) + 30).all()
        assert (rgb[green, 1] > rgb[green, 0::2].max(1) + 30).all()
        assert (rgb[blue, 2] > rgb[blue, :2].max(1) + 30).all()
        counted += int(red.sum() + green.sum() + blue.sum())
        assert_reads_as_printed(info)
    assert counted > 300


def assert_reads_as_printed(info: PosterInfo) -> None:
    """The texture's left is on the left of the image and its top at the top: seen from its front, not mirrored."""
    (tl_u, tl_v), (tr_u, tr_v), (br_u, br_v), (bl_u, bl_v) = info.corners
    assert tl_u < tr_u and bl_u < br_u and tl_v < bl_v and tr_v < br_v


def test_farther_posters_are_smaller_as_the_pinhole_says() -> None:
    distances, sizes = [], []
    for i in range(24):
        _, _, info = render(i, RED, "billboard", (128, 256))
        camera = Camera.sample(scene_rng(0, "val", i), 128, 256)
        width, height = info.size
        off_axis = np.array([(info.centre[0]), info.centre[1] - camera.mount_height, info.centre[2]])
        cos_alpha = info.centre[2] / np.linalg.norm(off_axis)  # the ray's angle to the optical axis
        cos_angle = math.cos(math.radians(info.angle))
        expected = width * height * cos_angle * camera.focal**2 / (info.distance**2 * cos_alpha**3)
        assert info.area / expected == pytest.approx(1.0, abs=0.15)  # a small plane: solid angle times f^2
        distances.append(info.distance)
        sizes.append(math.sqrt(info.area / (width * height)))
    assert max(distances) > 2 * min(distances)
    assert spearmanr(distances, sizes).statistic < -0.8


def test_facade_posters_are_seen_obliquely_and_billboards_more_head_on() -> None:
    facade = [render(i, RED, "building")[2] for i in range(10)]
    facade = [info for info in facade if info.placement == "building"]
    billboard = [render(i, RED, "billboard")[2] for i in range(10)]
    assert len(facade) >= 6
    for info in facade:  # on a facade along the street: the normal points across the street
        assert abs(info.normal[0]) == 1.0 and info.angle > 45.0
        assert info.normal[0] * info.centre[0] < 0  # it faces the street
        assert_reads_as_printed(info)
    assert np.median([b.angle for b in billboard]) < np.median([f.angle for f in facade])


def test_posters_are_deterministic_for_a_seed_and_differ_between_scenes() -> None:
    a = render_scene_with_poster(scene_rng(0, "val", 5), RED, SIZE, placement="billboard")
    b = render_scene_with_poster(scene_rng(0, "val", 5), RED, SIZE, placement="billboard")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert np.array_equal(a[2].corners, b[2].corners) and np.array_equal(a[2].visible, b[2].visible)
    c = render_scene_with_poster(np.random.default_rng(7), RED, SIZE)
    d = render_scene_with_poster(7, RED, SIZE)
    assert np.array_equal(c[0], d[0]) and np.array_equal(c[2].corners, d[2].corners)
    e = render_scene_with_poster(scene_rng(0, "val", 6), RED, SIZE, placement="billboard")
    assert not np.array_equal(a[2].corners, e[2].corners)


def test_render_with_poster_and_the_data_set_agree() -> None:
    patch = torch.rand(3, 10, 14, generator=torch.Generator().manual_seed(1))
    images, labels, infos = render_with_poster(patch, 3, SIZE, seed=2, split="train", placement="billboard")
    assert images.dtype == torch.uint8 and tuple(images.shape) == (3, 3, *SIZE)
    assert labels.dtype == torch.int64 and tuple(labels.shape) == (3, *SIZE)
    assert len(infos) == 3 and all(isinstance(info, PosterInfo) for info in infos)
    ds = SyntheticStreets("train", SIZE, length=3, seed=2, poster=patch, poster_placement="billboard")
    for i in range(3):
        image, label = ds[i]
        assert torch.equal(image, images[i]) and torch.equal(label, labels[i])
        info = ds.poster_info(i)
        assert np.array_equal(info.visible, infos[i].visible) and np.array_equal(info.corners, infos[i].corners)
        ids = ds.instance_ids(i)  # instances agree with the poster scene's label
        assert ((ids == -1) | (ids // 1000 == label.numpy())).all()
    assert "poster=(3, 10, 14)" in repr(ds)
    assert not torch.equal(images[0], SyntheticStreets("train", SIZE, length=3, seed=2)[0][0])


def test_bad_posters_and_placements_are_refused() -> None:
    with pytest.raises(InputError, match=r"shape \(3, h, w\)"):
        render_scene_with_poster(0, np.zeros((8, 8, 3), np.float32), SIZE)
    with pytest.raises(InputError, match=r"in \[0, 1\]"):
        render_scene_with_poster(0, solid(1.5, 0, 0), SIZE)
    with pytest.raises(InputError, match=r"in \[0, 1\]"):
        render_scene_with_poster(0, solid(float("nan"), 0, 0), SIZE)
    with pytest.raises(InputTypeError, match="floats"):
        render_scene_with_poster(0, np.zeros((3, 8, 8), np.uint8), SIZE)
    with pytest.raises(InputTypeError, match="torch.Tensor or numpy array"):
        render_scene_with_poster(0, [[0.0]], SIZE)
    with pytest.raises(ConfigError, match="unknown poster placement 'roof'"):
        render_scene_with_poster(0, RED, SIZE, placement="roof")
    with pytest.raises(ConfigError, match="unknown poster placement"):
        SyntheticStreets(poster=RED, poster_placement="wall")
    with pytest.raises(ConfigError, match="n must be a positive int"):
        render_with_poster(RED, 0, SIZE)
    with pytest.raises(ConfigError, match="has no poster"):
        SyntheticStreets("val", SIZE, length=2).poster_info(0)
