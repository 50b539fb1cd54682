"""Built-in demo models, model specs (``torchvision:NAME?num_classes=10``, ``file.py:factory``)
and building a spec with its weights."""

from .build import BuiltModel, build_with_weights
from .digits_cnn import DigitsCNN
from .spec import ModelSpec, load_model_spec

__all__ = ["BuiltModel", "DigitsCNN", "ModelSpec", "build_with_weights", "load_model_spec"]
