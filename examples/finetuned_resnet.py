"""Make the files of the command-line story "my fine-tuned ResNet-18 with its own classes".

Writes, in the current folder:

- ``digits-train/`` and ``imgs/``: the scikit-learn digits as PNG files, one subfolder per
  class (0..9); the first half of the digits in ``digits-train/``, the second half in
  ``imgs/``, so the model never sees the images prunekit evaluates it on;
- ``r18.pt``: a torchvision ResNet-18 with a 10-class head, fine-tuned in plain PyTorch on
  ``digits-train/`` at 32x32 (RGB, as prunekit reads image folders; BatchNorm statistics
  recomputed at the end), saved with
  ``torch.save(model.state_dict(), "r18.pt")``, a plain state dict that prunekit reads with
  ``torch.load(weights_only=True)``.

Then (README, "Command line")::

    prunekit prune torchvision:resnet18 --weights r18.pt --data imgs --image-size 32 \\
        --flops-reduction 2 --finetune-epochs 3 --out run1

About a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image
from sklearn.datasets import load_digits
from torch import nn
from torchvision import transforms


def write_folders(train_root: Path, eval_root: Path) -> None:
    """The digits as 8x8 grayscale PNGs, first half under ``train_root``, rest under
    ``eval_root``."""
    digits = load_digits()
    half = len(digits.target) // 2
    for i, (image, label) in enumerate(zip(digits.images, digits.target)):
        folder = (train_root if i < half else eval_root) / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 255 / 16).astype(np.uint8)).save(folder / f"{i:04d}.png")


def fine_tune(root: Path, epochs: int, size: int) -> nn.Module:
    """A ResNet-18 with 10 outputs trained on the image folder ``root`` (Adam, cross-entropy)."""
    torch.manual_seed(0)
    data = torchvision.datasets.ImageFolder(
        str(root), transform=transforms.Compose([transforms.Resize((size, size)),
                                                 transforms.ToTensor()]),
        loader=lambda path: Image.open(path).convert("RGB"))
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True)
    model = torchvision.models.resnet18(num_classes=10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        model.train()
        correct = 0
        for x, y in loader:
            optimizer.zero_grad()
            logits = model(x)
            nn.functional.cross_entropy(logits, y).backward()
            optimizer.step()
            correct += int((logits.argmax(1) == y).sum())
        print(f"epoch {epoch + 1}: training accuracy {correct / len(data):.1%}")
    recalibrate_batch_norm(model, loader)
    return model.eval()


def recalibrate_batch_norm(model: nn.Module, loader: torch.utils.data.DataLoader) -> None:
    """Running BatchNorm statistics as the plain average over one pass of the final model
    (after a few epochs the running averages still lag behind the moving weights)."""
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for x, _ in loader:
            model(x)
    for norm in norms:
        norm.momentum = 0.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=32)
    args = parser.parse_args()
    write_folders(Path("digits-train"), Path("imgs"))
    model = fine_tune(Path("digits-train"), args.epochs, args.image_size)
    torch.save(model.state_dict(), "r18.pt")
    print("wrote r18.pt (ResNet-18, 10 classes), digits-train/ and imgs/")


if __name__ == "__main__":
    main()
