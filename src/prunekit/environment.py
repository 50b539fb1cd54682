"""What this run ran on: versions, devices and threads (for reports and bug reports)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from typing import Any

import torch

__all__ = ["cpu_capability", "environment_info", "package_version", "versions"]

_PACKAGES = ("prunekit", "torch", "torchvision", "numpy", "safetensors", "scikit-learn",
             "click", "matplotlib", "timm", "transformers")


def package_version(name: str) -> str | None:
    """Installed version of distribution ``name``, or ``None`` if it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """Python, platform and the versions of prunekit's main dependencies."""
    info: dict[str, str | None] = {"python": platform.python_version(),
                                   "platform": platform.platform()}
    for name in _PACKAGES:
        info[name] = package_version(name)
    return info


def cpu_capability() -> str:
    """The instruction level of the CPU kernels PyTorch dispatches to (``"AVX512"``,
    ``"AVX2"``, ``"DEFAULT"``, ...): the same model can train differently at another level,
    and ``ATEN_CPU_CAPABILITY`` lowers it."""
    get = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    return str(get()) if get is not None else "unknown"


def _devices() -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = [{"type": "cpu", "name": platform.processor() or
                                      platform.machine(), "cores": os.cpu_count(),
                                      "kernels": cpu_capability()}]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            devices.append({"type": "cuda", "index": i, "name": props.name,
                            "memory_gib": round(props.total_memory / 2**30, 1),
                            "capability": f"{props.major}.{props.minor}"})
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append({"type": "mps", "name": "Apple Metal"})
    return devices


def environment_info() -> dict[str, Any]:
    """Versions, devices (CPU, CUDA, MPS), and the thread settings torch uses."""
    return {
        "versions": versions(),
        "executable": sys.executable,
        "devices": _devices(),
        "cuda": {"available": torch.cuda.is_available(), "torch_cuda": torch.version.cuda},
        "threads": {"torch_intra_op": torch.get_num_threads(),
                    "torch_inter_op": torch.get_num_interop_threads(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                    "cpu_count": os.cpu_count()},
    }
