"""Input validation a hostile user broke (issue 22): each case failed before its fix. Refusals are one line with exit
code 2 on the command line, and a ``SegattackError`` that is also the built-in type a Python caller expects."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

import pytest
import torch

import segattack as sa
from segattack.cli import _message, main
from segattack.data.cityscapes import Cityscapes
from segattack.data.folder import ImageFolder
from segattack.data.labels import CLASS_NAMES, class_ids
from segattack.data.synthetic import SyntheticStreets
from segattack.errors import (
    ConfigError,
    DataError,
    DataNotFoundError,
    InputError,
    InputTypeError,
    ModelError,
    ModelTypeError,
    SegattackError,
)
from segattack.transforms import Transform, parse_transforms

from .models_for_cli import TinyFCN, one_line_error, street_image, tiny_fcn, write_street_pngs

MODEL = "tests.models_for_cli:tiny_fcn"
S = ["--data", "synthetic:1", "--size", "32x64", "--eps", "2"]


@pytest.fixture(scope="module")
def pngs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_street_pngs(tmp_path_factory.mktemp("data") / "pngs", n=2)


# -- 1. --out "" wrote into the current directory, then crashed ----------------------------------------------------


@pytest.mark.parametrize("blank", ["", "  "])
def test_an_empty_out_is_refused_by_every_command_that_takes_one(
    blank: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    img = tmp_path / "in" / "one.png"
    img.parent.mkdir()
    from PIL import Image

    Image.fromarray(street_image(0)).save(img)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    commands = [
        ["run", *S, "--model", MODEL, "--out", blank],
        ["demo", "--out", blank],
        ["attack", str(img), "--model", MODEL, "--out", blank],
        ["universal", "--fit-data", "synthetic-train:1", *S[:4], "--out", blank],
        ["patch", "--fit-data", "synthetic-train:1", *S[:4], "--out", blank],
        ["compare", *S, "--models", f"{MODEL},tests.models_for_cli:tiny_fcn_module", "--out", blank],
        ["train", "--steps", "1", "--out", blank],
        ["train", "--steps", "1", "--out", str(tmp_path / "t"), "--export-dir", blank],
        ["eval", *S[:4], "--json", blank],
    ]
    for argv in commands:
        err = one_line_error(argv, capsys)
        assert "is empty" in err and ("--out" in err or "--export-dir" in err or "--json" in err), (argv, err)
    assert list(cwd.iterdir()) == []  # nothing was written into the current directory
    assert not (tmp_path / "t").exists()


# -- 2. absurd transform parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "phrase"),
    [
        ("noise:1e308", "up to 255"),
        ("noise:256", "up to 255"),
        ("noise:1e400", "finite"),  # float("1e400") is inf
        ("noise:nan", "finite"),
        ("blur:1e300", "up to 100"),
        ("blur:inf", "finite"),
        ("resize:-inf", "finite"),
        ("resize:1.5", "(0, 1]"),
        ("jpeg:101", "1 to 100"),
        ("jpeg:nan", "finite"),
    ],
)
def test_absurd_transform_parameters_are_refused(spec: str, phrase: str) -> None:
    with pytest.raises(ConfigError, match=phrase.replace("(", r"\(").replace("]", r"\]")) as err:
        parse_transforms(spec)
    assert isinstance(err.value, ValueError)
    assert "1000000000" not in str(err.value)  # a huge number is shown as 1e+308, not as 309 digits


def test_transform_parameters_at_their_bounds_are_taken() -> None:
    assert [t.name for t in parse_transforms("noise:255,blur:100,resize:1,jpeg:1")] == [
        "noise:255", "blur:100", "resize:1", "jpeg:1"
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="up to 255"):
        Transform("noise", 1e308)


def test_survive_with_absurd_noise_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", *S, "--model", MODEL, "--out", str(tmp_path / "o"), "--survive", "noise:1e308"]
    err = one_line_error(argv, capsys)
    assert "--survive" in err and "up to 255" in err and "1e+308" in err
    assert not (tmp_path / "o").exists()


# -- 3. float64 images ended in a torch RuntimeError ---------------------------------------------------------------


def _street_batch(dtype: torch.dtype) -> torch.Tensor:
    return (torch.from_numpy(street_image(0)).permute(2, 0, 1)[None].to(dtype) / 255).contiguous()


def test_a_float32_model_takes_float64_images() -> None:
    model = tiny_fcn()
    x64, x32 = _street_batch(torch.float64), _street_batch(torch.float32)
    logits = model(x64)
    assert logits.dtype == torch.float32
    assert torch.equal(logits, model(x32))  # float64 images of 8-bit values cast exactly
    assert torch.equal(model.predict(x64), model.predict(x32))
    assert model.input_dtype() == torch.float32


def test_an_attack_on_float64_images_returns_float64_images_within_the_budget() -> None:
    model = tiny_fcn()
    x64, x32 = _street_batch(torch.float64), _street_batch(torch.float32)
    target = sa.hide_class_target(model.predict(x32), class_id=11)
    adv = sa.illm(model, x64, target, eps=2 / 255)
    assert adv.dtype == torch.float64 and adv.shape == x64.shape
    assert float((adv - x64).abs().max()) <= 2 / 255 + 1e-12
    assert torch.equal(model.predict(adv), model.predict(sa.illm(model, x32, target, eps=2 / 255)))
    x64.requires_grad_(True)  # the gradient reaches float64 images in their own dtype
    model(x64).sum().backward()
    assert x64.grad is not None and x64.grad.dtype == torch.float64


# -- 4. PixelModel(std=NaN) was accepted ---------------------------------------------------------------------------

NAN, INF = math.nan, math.inf


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        ({"std": (NAN, 1.0, 1.0)}, "std must be positive finite"),
        ({"std": (INF, 1.0, 1.0)}, "std must be positive finite"),
        ({"std": (0.0, 1.0, 1.0)}, "std must be positive finite"),
        ({"std": (-0.5, 1.0, 1.0)}, "std must be positive finite"),
        ({"mean": (NAN, 0.5, 0.5)}, "give finite numbers"),
        ({"mean": (-INF, 0.5, 0.5)}, "give finite numbers"),
        ({"mean": (0.5,), "std": (0.2, 0.2, 0.2)}, "same length"),
        ({"mean": (), "std": ()}, "mean is empty"),
        ({"num_classes": 0}, "num_classes must be a positive integer"),
        ({"num_classes": 2.5}, "num_classes must be a positive integer"),
    ],
)
def test_pixel_model_refuses_a_bad_normalisation_at_construction(kwargs: dict[str, object], phrase: str) -> None:
    with pytest.raises(ModelError, match=phrase) as err:
        sa.PixelModel(TinyFCN(), **kwargs)  # type: ignore[arg-type]
    assert isinstance(err.value, ValueError)


def test_pixel_model_refuses_mean_and_std_of_the_wrong_type() -> None:
    for value in ("0.5", 0.5, [object()]):
        with pytest.raises(ModelTypeError, match="mean must be a sequence of numbers") as err:
            sa.PixelModel(TinyFCN(), mean=value)  # type: ignore[arg-type]
        assert isinstance(err.value, TypeError) and isinstance(err.value, ValueError)
    # a tensor of numbers still works
    model = sa.PixelModel(TinyFCN(), mean=torch.tensor([0.5] * 3), std=[0.25] * 3)  # type: ignore[arg-type]
    assert model.std.flatten().tolist() == [0.25] * 3


def test_std_nan_on_the_command_line_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", *S, "--model", "tests.models_for_cli:tiny_fcn_module", "--std", "nan,1,1", "--out", str(tmp_path)]
    err = one_line_error(argv, capsys)
    assert "std must be positive finite" in err and "tiny_fcn_module" in err


# -- 5. --hide 7 with a class named "7" silently took id 7 ---------------------------------------------------------

NAMES_7 = tuple("7" if i == 11 else n for i, n in enumerate(CLASS_NAMES))  # class 11 is called "7"


def test_a_number_that_is_also_another_class_name_is_ambiguous() -> None:
    with pytest.raises(ConfigError, match=r"'7' is ambiguous: class id 7 \(traffic sign\) or the class named '7' "
                                          r"\(id 11\); write id:7 for the id or name:7 for the name"):  # fmt: skip
        class_ids("7", NAMES_7)
    assert class_ids("id:7", NAMES_7) == (7,)
    assert class_ids("name:7", NAMES_7) == (11,)
    assert class_ids("person,8", CLASS_NAMES) == (11, 8)  # no class is named "8": the id, as before
    assert class_ids(7, NAMES_7) == (7,)  # a Python int is an id, never a name
    assert class_ids("7", tuple(str(i) for i in range(10))) == (7,)  # the class named "7" is class 7: no ambiguity
    with pytest.raises(ConfigError, match="unknown class name 'pedestrian'"):
        class_ids("name:pedestrian", NAMES_7)


def test_hide_ambiguous_on_the_command_line_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = tmp_path / "names.txt"
    names.write_text("\n".join(NAMES_7) + "\n")
    out = tmp_path / "o"
    argv = ["run", *S, "--model", MODEL, "--class-names", str(names), "--out", str(out), "--hide", "7"]
    err = one_line_error(argv, capsys)
    assert "--hide" in err and "ambiguous" in err and "id:7" in err and "name:7" in err
    assert not out.exists()


# -- 6. --labels equal to the image folder said "no images found" --------------------------------------------------


def test_a_label_folder_that_is_the_image_folder_names_the_problem(
    pngs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(DataError, match="is the image folder"):
        ImageFolder(pngs, labels=pngs)
    with pytest.raises(DataError, match="holds the image folder"):
        ImageFolder(pngs, labels=pngs.parent)
    err = one_line_error(["eval", "--data", f"folder:{pngs}", "--labels", str(pngs)], capsys)
    assert "is the image folder" in err and "no images found" not in err and "folder of label PNGs" in err


# -- 7. compare with a wrong model printed "model the default model: ..." ------------------------------------------


def test_compare_names_the_failing_model_in_a_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for bad, phrase in (("returns_tuple", "returned tuple"), ("returns_integers", "floating point")):
        argv = ["compare", *S, "--models", f"tests.models_for_cli:{bad},{MODEL}", "--out", str(tmp_path / bad)]
        capsys.readouterr()
        assert main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()  # "comparing 2 models ...", then the error
        assert "Traceback" not in "".join(lines)
        err = lines[-1]
        assert err.startswith("segattack compare: error: model ") and "default model" not in err, err
        assert f"model {bad} " in err and phrase in err, err


def test_a_model_error_names_the_model_it_concerns() -> None:
    err = ModelError("returned a tuple")
    assert _message(err, argparse.Namespace(model=None)) == "the default model: returned a tuple"
    assert _message(err, argparse.Namespace(model="zoo:x")) == "model zoo:x: returned a tuple"
    assert _message(err, argparse.Namespace(models="a,b")) == "returned a tuple"  # compare names them in the text
    assert _message(ModelError("model a failed", spec="a"), argparse.Namespace(model=None)) == "model a failed"


# -- 8. every refusal is a SegattackError (and the built-in type) --------------------------------------------------


def test_library_refusals_are_segattack_errors_of_the_expected_builtin_type(tmp_path: Path) -> None:
    model = tiny_fcn()
    cases: list[tuple[object, type[BaseException]]] = []

    def refusal(call: object, builtin: type[BaseException]) -> None:
        cases.append((call, builtin))

    refusal(lambda: model([1, 2]), TypeError)
    refusal(lambda: model(torch.zeros(1, 3, 4, 4, dtype=torch.uint8)), TypeError)
    refusal(lambda: model(torch.full((1, 3, 4, 4), 2.0)), ValueError)
    refusal(lambda: model(torch.rand(3, 4, 4)), ValueError)
    refusal(lambda: sa.PixelModel(torch.nn.Identity(), num_classes=19)(torch.rand(1, 3, 4, 4)), ValueError)
    refusal(lambda: sa.PixelModel(lambda x: x), TypeError)  # type: ignore[arg-type]
    refusal(lambda: model.set_fast_path(amp="fp8"), ValueError)
    refusal(lambda: parse_transforms(5), TypeError)  # type: ignore[arg-type]
    refusal(lambda: Transform("blur", 5.0)(torch.rand(1, 3, 8, 8)), ValueError)  # radius 15 on 8x8
    refusal(lambda: class_ids("pedestrian"), ValueError)
    refusal(lambda: SyntheticStreets(split="test"), ValueError)
    refusal(lambda: SyntheticStreets(length=1)["0"], TypeError)  # type: ignore[index]
    refusal(lambda: Cityscapes(tmp_path / "nowhere"), FileNotFoundError)
    refusal(lambda: sa.data.labels.label_names(3, ("a", "b")), ValueError)
    from segattack.adapters import PadToMultiple

    refusal(lambda: PadToMultiple(torch.nn.Identity(), multiple=0), ValueError)
    refusal(lambda: PadToMultiple(object()), TypeError)  # type: ignore[arg-type]
    for call, builtin in cases:
        with pytest.raises(SegattackError) as err:
            call()  # type: ignore[operator]
        assert isinstance(err.value, builtin), (err.value, builtin)
    assert issubclass(InputTypeError, InputError) and issubclass(DataNotFoundError, DataError)


def test_converted_refusals_are_one_line_on_the_command_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["eval", "--data", f"cityscapes:{tmp_path}", "--size", "32x64"]
    err = one_line_error(argv, capsys)
    assert str(tmp_path) in err
    argv = ["run", *S, "--model", "tests.models_for_cli:returns_integers", "--out", str(tmp_path / "o")]
    assert "floating point logits" in one_line_error(argv, capsys)
    argv = ["run", *S, "--model", "tests.models_for_cli:tiny_fcn_module", "--mean", "inf,0,0", "--out", str(tmp_path)]
    assert "give finite numbers" in one_line_error(argv, capsys)


# -- 9. dir(segattack) listed Any, TYPE_CHECKING, annotations, importlib -------------------------------------------


def test_dir_shows_the_public_api_only() -> None:
    names = dir(sa)
    for helper in ("Any", "TYPE_CHECKING", "annotations", "importlib"):
        assert helper not in names
    assert set(sa.__all__) <= set(names) and "__version__" in names
    assert all(not n.startswith("_") or n == "__version__" for n in names)
    for n in names:  # every listed name loads (lazily)
        assert getattr(sa, n) is not None


def test_importing_segattack_stays_lazy() -> None:
    import subprocess
    import sys

    code = "import sys, segattack; dir(segattack); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert out.stdout.strip() == "False"
