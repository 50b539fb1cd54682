"""Built-in demo models and model specs (``torchvision:NAME``, ``file.py:factory``)."""

from .digits_cnn import DigitsCNN
from .spec import ModelSpec, load_model_spec

__all__ = ["DigitsCNN", "ModelSpec", "load_model_spec"]
