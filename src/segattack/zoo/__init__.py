"""Model zoo: three architectures written here (FCN-8s, Long et al. 2015; a DeepLabv3+-style network, Chen et al.
2017/2018; a SegFormer-style transformer, Xie et al. 2021) and the shipped weights with their model cards.

``available()`` lists the shipped models (name -> description); ``load(name)`` returns a ``PixelModel`` (images in
[0, 1] -> logits) after checking the weights' SHA-256 against the model card; ``save_model`` writes such a pair.
``ModelCard.read(path)`` reads and checks a card (the one place cards are read); ``find_card("NAME")`` or
``find_card("PATH/NAME.json")`` finds one and ``load_card(card)`` loads its model.
"""

from __future__ import annotations

from .architectures import ARCHITECTURES
from .card import ModelCard, check_model_name
from .deeplabv3 import DeepLabV3
from .fcn8s import FCN8s, bilinear_kernel
from .registry import (
    RETIRED_MODELS,
    WEIGHTS_DIR,
    available,
    find_card,
    load,
    load_card,
    read_safetensors,
    save_model,
    sha256_file,
)
from .segformer import SegFormer

#: The shipped model the command line uses when no --model is given (see weights/<name>.md, its model card).
DEFAULT_MODEL = "fcn2s-synth-w8-r32"
#: The default fine-tuned with adversarial training (PGD-3, eps 4/255, every image adversarial; issue 23): the zoo's
#: robust model, for evaluating attacks where they differ (see weights/<name>.md).
ROBUST_MODEL = "fcn2s-synth-w8-r32-at4"

__all__ = [
    "DEFAULT_MODEL",
    "ROBUST_MODEL",
    "DeepLabV3",
    "FCN8s",
    "SegFormer",
    "bilinear_kernel",
    "ARCHITECTURES",
    "RETIRED_MODELS",
    "WEIGHTS_DIR",
    "ModelCard",
    "available",
    "check_model_name",
    "find_card",
    "load",
    "load_card",
    "read_safetensors",
    "save_model",
    "sha256_file",
]
