"""Image-folder classification data: ``root/CLASS/*.png`` (one subfolder per class).

Read with ``torchvision.datasets.ImageFolder`` (RGB, resized to ``image_size`` square, scaled
to [0, 1]) into memory, then split like the other local data (stratified, seeded).
torchvision is imported only here, when an image folder is read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from .arrays import ArrayData, split_arrays

__all__ = ["is_image_folder", "load_image_folder"]


def is_image_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder with at least one subfolder (a class)."""
    root = Path(path)
    return root.is_dir() and any(p.is_dir() for p in root.iterdir())


def load_image_folder(path: str | os.PathLike[str], *, image_size: int = 224,
                      val_fraction: float = 0.2, seed: int = 0) -> ArrayData:
    """All images under ``path`` as ``(N, 3, image_size, image_size)`` float tensors."""
    root = Path(path)
    if not root.is_dir():
        raise ConfigError(f"image folder {str(root)!r} does not exist")
    try:
        from torchvision import transforms
        from torchvision.datasets import ImageFolder
    except ImportError:
        raise ConfigError("image-folder data needs torchvision: pip install "
                          "'prunekit[vision]'") from None
    transform = transforms.Compose([transforms.Resize((image_size, image_size)),
                                    transforms.ToTensor()])
    try:
        dataset = ImageFolder(str(root), transform=transform,
                              loader=_rgb)
    except (FileNotFoundError, OSError) as exc:
        raise ConfigError(f"{str(root)!r} is not an image folder (one subfolder of images "
                          f"per class): {exc}") from None
    images, labels = [], []
    for index in range(len(dataset)):
        try:
            image, label = dataset[index]
        except OSError as exc:
            raise ConfigError(f"cannot read image {dataset.samples[index][0]!r}: {exc}") \
                from None
        images.append(image)
        labels.append(label)
    x = torch.stack(images).numpy()
    y = np.asarray(labels, dtype=np.int64)
    classes = ", ".join(dataset.classes)
    return split_arrays(x, y, name=f"{root.name} ({len(dataset.classes)} classes: {classes})",
                        val_fraction=val_fraction, seed=seed,
                        class_names=tuple(dataset.classes))


def _rgb(path: str) -> object:
    from PIL import Image

    with open(path, "rb") as fh:
        return Image.open(fh).convert("RGB")
