"""Every Pillow mode a user may feed is read to the documented 8-bit RGB values, or refused naming the mode.

Each case writes a real file to disk and reads it back through ``read_rgb`` and through ``ImageFolder``. PNG cannot
hold modes PA, I, F, LAB or I;16B, so those are written as TIFF bytes under a ``.png`` name (Pillow opens a file by
its content, not its extension: a user's mislabelled file takes the same path). 16-bit colour PNGs are written by the
tiny encoder below (zlib + struct, as the PNG specification lays them out), not by Pillow, which cannot write them.
"""

from __future__ import annotations

import logging
import struct
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segattack.data import Cityscapes, ImageFolder, UnreadableImageError
from segattack.data.folder import decode_rgb, read_label_ids, read_rgb


def _png16(path: Path, values: np.ndarray, color_type: int) -> None:
    """Write ``values`` (H, W) or (H, W, C) as a 16-bit PNG of ``color_type`` (0 grey, 2 RGB, 4 grey+alpha, 6 RGBA)."""
    h, w = values.shape[:2]
    raw = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(h))  # filter 0 per row, big-endian

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def _grey3(values: list[list[int]]) -> np.ndarray:
    return np.repeat(np.array(values, np.uint8)[..., None], 3, axis=2)


# 16-bit values and their high bytes: 0x12FF -> 0x12 shows v >> 8 (round(v / 257) would give 0x13)
G16 = np.array([[0x1234, 0x12FF, 0xFFFF], [0x00FF, 0x8000, 0x0000]], np.uint16)
G16_TO_8 = [[0x12, 0x12, 0xFF], [0x00, 0x80, 0x00]]
RGB16 = np.stack([G16, G16[::-1], np.full_like(G16, 0xABCD)], axis=2)
RGB16_TO_8 = np.stack([np.array(G16_TO_8), np.array(G16_TO_8)[::-1], np.full((2, 3), 0xAB)], axis=2).astype(np.uint8)
PALETTE = [10, 20, 30, 40, 50, 60, 200, 100, 0] + [0] * (256 * 3 - 9)
INDICES = np.array([[0, 1, 2], [2, 1, 0]], np.uint8)
PALETTE_RGB = np.array(PALETTE[:9], np.uint8).reshape(3, 3)[INDICES]
RGB = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255]], [[1, 2, 3], [128, 64, 32], [250, 251, 252]]], np.uint8)


def _write_1(p: Path) -> None:
    Image.fromarray(np.array([[True, False, True], [False, False, True]])).save(p)


def _write_l(p: Path) -> None:
    Image.fromarray(np.array([[0, 18, 200], [255, 1, 128]], np.uint8)).save(p)


def _write_la(p: Path) -> None:  # alpha 0 on a bright pixel: dropped, not blended to black
    grey = np.array([[0, 18, 200], [255, 1, 128]], np.uint8)
    alpha = np.array([[255, 0, 128], [0, 255, 7]], np.uint8)
    Image.fromarray(np.stack([grey, alpha], axis=2), mode="LA").save(p)


def _write_p(p: Path) -> None:
    im = Image.fromarray(INDICES, mode="P")
    im.putpalette(PALETTE)
    im.save(p)


def _write_p_transparent(p: Path) -> None:  # per-index transparency (tRNS): colours kept, no Pillow warning
    im = Image.fromarray(INDICES, mode="P")
    im.putpalette(PALETTE)
    im.save(p, transparency=bytes([0, 128, 255]))


def _write_pa(p: Path) -> None:
    im = Image.fromarray(INDICES, mode="P")
    im.putpalette(PALETTE)
    pa = im.convert("PA")
    pa.putalpha(Image.fromarray(np.array([[0, 255, 9], [255, 0, 1]], np.uint8)))
    pa.save(p, format="TIFF")


def _write_rgb(p: Path) -> None:
    Image.fromarray(RGB).save(p)


def _write_rgba(p: Path) -> None:
    alpha = np.array([[0, 255, 1], [128, 0, 255]], np.uint8)[..., None]
    Image.fromarray(np.concatenate([RGB, alpha], axis=2), mode="RGBA").save(p)


CMYK = [[(0, 255, 255, 0), (0, 0, 0, 255), (0, 0, 0, 0)], [(128, 64, 0, 32), (255, 0, 0, 0), (0, 0, 255, 0)]]
CMYK_RGB = np.array([[[255, 0, 0], [0, 0, 0], [255, 255, 255]], [[111, 167, 223], [0, 255, 255], [255, 255, 0]]])


def _write_cmyk(p: Path) -> None:
    Image.fromarray(np.array(CMYK, np.uint8), mode="CMYK").save(p, format="TIFF")


def _write_i16(p: Path) -> None:  # Pillow's own 16-bit grey PNG writer
    Image.fromarray(G16).save(p)


def _write_i16_encoder(p: Path) -> None:  # the same pixels, encoded without Pillow
    _png16(p, G16, 0)


def _write_i16b(p: Path) -> None:
    Image.frombytes("I;16B", (3, 2), G16.astype(">u2").tobytes()).save(p, format="TIFF")


def _write_i_16bit(p: Path) -> None:
    Image.fromarray(G16.astype(np.int32)).save(p, format="TIFF")


def _write_i_8bit(p: Path) -> None:
    Image.fromarray(np.array([[0, 18, 200], [255, 1, 128]], np.int32)).save(p, format="TIFF")


def _write_f_unit(p: Path) -> None:
    Image.fromarray(np.array([[0.0, 0.5, 1.0], [0.25, 0.1, 0.999]], np.float32)).save(p, format="TIFF")


def _write_f_levels(p: Path) -> None:
    Image.fromarray(np.array([[0.0, 17.6, 255.0], [1.2, 128.0, 99.5]], np.float32)).save(p, format="TIFF")


def _write_rgb16(p: Path) -> None:
    _png16(p, RGB16, 2)


def _write_rgba16(p: Path) -> None:
    _png16(p, np.concatenate([RGB16, np.zeros((2, 3, 1), np.uint16)], axis=2), 6)  # fully transparent


def _write_la16(p: Path) -> None:
    _png16(p, np.stack([G16, np.full_like(G16, 0x4000)], axis=2), 4)


# (writer, Pillow mode read back, expected (H, W, 3) uint8, words the note must hold; None: no note)
READ_CASES: dict[str, tuple[Callable[[Path], None], str, np.ndarray, str | None]] = {
    "1": (_write_1, "1", _grey3([[255, 0, 255], [0, 0, 255]]), "mode 1"),
    "L": (_write_l, "L", _grey3([[0, 18, 200], [255, 1, 128]]), "mode L"),
    "LA": (_write_la, "LA", _grey3([[0, 18, 200], [255, 1, 128]]), "mode LA"),
    "P": (_write_p, "P", PALETTE_RGB, "mode P"),
    "P+tRNS": (_write_p_transparent, "P", PALETTE_RGB, "mode P"),
    "PA": (_write_pa, "PA", PALETTE_RGB, "mode PA"),
    "RGB": (_write_rgb, "RGB", RGB, None),
    "RGBA": (_write_rgba, "RGBA", RGB, "mode RGBA"),
    "CMYK": (_write_cmyk, "CMYK", CMYK_RGB.astype(np.uint8), "mode CMYK"),
    "I;16": (_write_i16, "I;16", _grey3(G16_TO_8), "mode I;16"),
    "I;16 (own encoder)": (_write_i16_encoder, "I;16", _grey3(G16_TO_8), "mode I;16"),
    "I;16B": (_write_i16b, "I;16B", _grey3(G16_TO_8), "mode I;16B"),
    "I 16-bit range": (_write_i_16bit, "I", _grey3(G16_TO_8), "mode I"),
    "I 8-bit range": (_write_i_8bit, "I", _grey3([[0, 18, 200], [255, 1, 128]]), "mode I"),
    # round(v * 255) with Python's rounding (halves to even): 127.5 -> 128, 63.75 -> 64, 25.5 -> 26, 254.745 -> 255
    "F in [0, 1]": (_write_f_unit, "F", _grey3([[0, 128, 255], [64, 26, 255]]), "mode F"),
    "F in [0, 255]": (_write_f_levels, "F", _grey3([[0, 18, 255], [1, 128, 100]]), "mode F"),
    "RGB 16-bit": (_write_rgb16, "RGB", RGB16_TO_8, "16 bits per channel"),
    "RGBA 16-bit": (_write_rgba16, "RGBA", RGB16_TO_8, "16 bits per channel"),
    "LA 16-bit": (_write_la16, "RGBA", _grey3(G16_TO_8), "16 bits per channel"),  # Pillow opens it as RGBA
}


@pytest.mark.parametrize("case", list(READ_CASES))
def test_mode_reads_to_expected_rgb(tmp_path: Path, case: str) -> None:
    write, mode, expected, note = READ_CASES[case]
    path = tmp_path / "img.png"
    write(path)
    with Image.open(path) as im:
        assert im.mode == mode  # the file really is in the mode under test
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no Pillow warning (e.g. about palette transparency) reaches the user
        pixels, got_mode = read_rgb(path)
    assert got_mode == mode
    assert pixels.dtype == np.uint8 and pixels.shape == (2, 3, 3)
    np.testing.assert_array_equal(pixels, expected)
    decoded = decode_rgb(path)
    if note is None:
        assert decoded.note is None
    else:
        assert decoded.note is not None and note in decoded.note
    image, label = ImageFolder(tmp_path)[0]
    assert torch.equal(image, torch.from_numpy(expected).permute(2, 0, 1))
    assert bool((label == 255).all())


def test_cmyk_jpeg(tmp_path: Path) -> None:
    """A CMYK JPEG (as print workflows write them): flat 8x8 blocks survive JPEG within a level or two."""
    cmyk = np.zeros((8, 16, 4), np.uint8)
    cmyk[:, :8] = (0, 255, 255, 0)  # red
    cmyk[:, 8:] = (0, 0, 0, 0)  # white
    Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "c.jpg", quality=95)
    pixels, mode = read_rgb(tmp_path / "c.jpg")
    assert mode == "CMYK"
    want = np.zeros((8, 16, 3), np.int16)
    want[:, :8] = (255, 0, 0)
    want[:, 8:] = (255, 255, 255)
    assert int(np.abs(pixels.astype(np.int16) - want).max()) <= 3


def test_mid_grey_16bit_png_is_not_white(tmp_path: Path) -> None:
    """The reported bug: ``convert("RGB")`` clips 16-bit values, so a mid-grey 16-bit PNG read as all white."""
    Image.fromarray(np.full((4, 5), 0x8080, np.uint16)).save(tmp_path / "grey.png")
    pixels, mode = read_rgb(tmp_path / "grey.png")
    assert mode == "I;16"
    assert pixels.shape == (4, 5, 3) and bool((pixels == 0x80).all())
    image, _ = ImageFolder(tmp_path)[0]
    assert bool((image == 0x80).all())


def test_16bit_colour_png_is_16bit_on_disk(tmp_path: Path) -> None:
    """The encoder above writes what it claims: bit depth 16 in IHDR, and the raw samples hold the 16-bit values."""
    _png16(tmp_path / "c.png", RGB16, 2)
    data = (tmp_path / "c.png").read_bytes()
    assert data[12:16] == b"IHDR" and data[24] == 16 and data[25] == 2
    (n,) = struct.unpack(">I", data[33:37])
    raw = zlib.decompress(data[41 : 41 + n])
    assert raw[1:3] == b"\x12\x34"  # first sample of the first row, after its filter byte


def _refuse_i_negative(p: Path) -> None:
    Image.fromarray(np.array([[-5, 0], [10, 300]], np.int32)).save(p, format="TIFF")


def _refuse_i_large(p: Path) -> None:
    Image.fromarray(np.array([[0, 70000], [10, 300]], np.int32)).save(p, format="TIFF")


def _refuse_f_negative(p: Path) -> None:
    Image.fromarray(np.array([[-0.5, 0.0], [0.5, 1.0]], np.float32)).save(p, format="TIFF")


def _refuse_f_large(p: Path) -> None:
    Image.fromarray(np.array([[0.0, 1000.0], [0.5, 1.0]], np.float32)).save(p, format="TIFF")


def _refuse_f_nan(p: Path) -> None:
    Image.fromarray(np.array([[np.nan, 0.0], [0.5, 1.0]], np.float32)).save(p, format="TIFF")


def _refuse_lab(p: Path) -> None:
    Image.new("LAB", (2, 2), (50, 128, 128)).save(p, format="TIFF")


# (writer, text the message must hold besides the file name and the fix)
REFUSE_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "I negative": (_refuse_i_negative, r"mode I \(32-bit integer grey\) holds values -5\.\.300"),
    "I above 65535": (_refuse_i_large, r"mode I \(32-bit integer grey\) holds values 0\.\.70000"),
    "F negative": (_refuse_f_negative, r"mode F \(32-bit float grey\) holds values -0\.5\.\.1"),
    "F above 255": (_refuse_f_large, r"mode F \(32-bit float grey\) holds values 0\.\.1000"),
    "F NaN": (_refuse_f_nan, r"mode F \(32-bit float grey\) holds NaN"),
    "LAB": (_refuse_lab, r"Pillow mode 'LAB' is not supported"),
}


@pytest.mark.parametrize("case", list(REFUSE_CASES))
def test_mode_refused_with_mode_values_and_fix(tmp_path: Path, case: str) -> None:
    write, what = REFUSE_CASES[case]
    path = tmp_path / "odd.png"
    write(path)
    with pytest.raises(UnreadableImageError, match=rf"odd\.png: {what}.*convert it to an 8-bit RGB PNG"):
        read_rgb(path)
    ds = ImageFolder(tmp_path)  # construction does not decode; the item raises, the experiment skips and counts it
    with pytest.raises(UnreadableImageError, match=what):
        ds[0]


def test_notes_once_per_data_set_and_name_the_mode(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """8-bit conversions are noted once (INFO); the first file deeper than 8 bits once more (WARNING), even after."""
    _write_l(tmp_path / "a_grey.png")
    _write_rgba(tmp_path / "b_rgba.png")
    _write_i16(tmp_path / "c_grey16.png")
    _write_rgb16(tmp_path / "d_rgb16.png")
    _write_rgb(tmp_path / "e_rgb.png")
    ds = ImageFolder(tmp_path)
    with caplog.at_level(logging.INFO, logger="segattack.data.folder"):
        for i in range(len(ds)):
            ds[i]
        for i in range(len(ds)):
            ds[i]  # a second epoch notes nothing more
    notes = [r for r in caplog.records if "noted once per data set" in r.getMessage()]
    assert [r.levelno for r in notes] == [logging.INFO, logging.WARNING]
    assert "a_grey.png: mode L: grey copied" in notes[0].getMessage()
    assert "c_grey16.png" in notes[1].getMessage()
    assert "mode I;16 (16-bit grey), reduced to 8 bits as v >> 8" in notes[1].getMessage()


def test_cityscapes_reads_16bit_images(tmp_path: Path) -> None:
    city = tmp_path / "leftImg8bit" / "val" / "aachen"
    city.mkdir(parents=True)
    _write_i16(city / "aachen_000000_000019_leftImg8bit.png")
    image, _ = Cityscapes(tmp_path, "val")[0]
    assert torch.equal(image, torch.from_numpy(_grey3(G16_TO_8)).permute(2, 0, 1))


# --- label files: ids exactly as stored, never scaled; colours refused ---

IDS = np.array([[0, 7, 18], [255, 11, 13]], np.uint8)


def _label_l(p: Path) -> None:
    Image.fromarray(IDS).save(p)


def _label_i16(p: Path) -> None:  # 16-bit grey PNG holding small ids: read as ids, not reduced by >> 8
    Image.fromarray(IDS.astype(np.uint16)).save(p)


def _label_i16_encoder(p: Path) -> None:
    _png16(p, IDS.astype(np.uint16), 0)


def _label_p(p: Path) -> None:  # palette PNG: the indices are the ids (the palette only renders them)
    im = Image.fromarray(IDS, mode="P")
    im.putpalette(PALETTE)
    im.save(p)


def _label_f_whole(p: Path) -> None:
    Image.fromarray(IDS.astype(np.float32)).save(p, format="TIFF")


@pytest.mark.parametrize("write", [_label_l, _label_i16, _label_i16_encoder, _label_p, _label_f_whole])
def test_label_ids_read_exactly(tmp_path: Path, write: Callable[[Path], None]) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    _write_rgb(tmp_path / "img" / "x.png")
    write(tmp_path / "lab" / "x.png")
    np.testing.assert_array_equal(read_label_ids(tmp_path / "lab" / "x.png"), IDS.astype(np.int64))
    _, label = ImageFolder(tmp_path / "img", labels=tmp_path / "lab")[0]
    assert label.dtype == torch.int64
    assert torch.equal(label, torch.from_numpy(IDS.astype(np.int64)))


def _label_rgb(p: Path) -> None:  # a colour-coded label (road purple, ...): the common mistake
    Image.fromarray(np.array([[[128, 64, 128]] * 3] * 2, np.uint8)).save(p)


def _label_rgba(p: Path) -> None:
    Image.fromarray(np.concatenate([np.stack([IDS] * 3, axis=2), np.full((2, 3, 1), 255, np.uint8)], 2)).save(p)


def _label_la(p: Path) -> None:
    Image.fromarray(np.stack([IDS, np.full_like(IDS, 255)], axis=2), mode="LA").save(p)


def _label_rgb16(p: Path) -> None:
    _png16(p, np.stack([IDS.astype(np.uint16)] * 3, axis=2), 2)


def _label_f_fraction(p: Path) -> None:
    Image.fromarray(IDS.astype(np.float32) + 0.5).save(p, format="TIFF")


@pytest.mark.parametrize(
    ("write", "what"),
    [
        (_label_rgb, "mode RGB with 3 channels"),
        (_label_rgba, "mode RGBA with 4 channels"),
        (_label_la, "mode LA with 2 channels"),
        (_label_rgb16, "mode RGB with 3 channels"),
        (_label_f_fraction, "mode F holding values that are not whole numbers"),
    ],
)
def test_label_colours_refused(tmp_path: Path, write: Callable[[Path], None], what: str) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    _write_rgb(tmp_path / "img" / "x.png")
    write(tmp_path / "lab" / "x.png")
    message = rf"label .*x\.png has {what}.*class ids"
    with pytest.raises(ValueError, match=message):
        read_label_ids(tmp_path / "lab" / "x.png")
    with pytest.raises(ValueError, match=message):
        ImageFolder(tmp_path / "img", labels=tmp_path / "lab")[0]
    if "channels" in what:
        with pytest.raises(ValueError, match="one channel.*not colours"):
            read_label_ids(tmp_path / "lab" / "x.png")
