"""Shared pieces of the benchmark scripts: model zoo, the two pruning engines, the Markdown header.

Each benchmark runs one (model, tool) pair per subprocess so that a crash, a hang or running
out of memory costs one row, not the sweep. The parent talks to its workers through one JSON
line on stdout, prefixed by :data:`RESULT_PREFIX`.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from collections.abc import Callable

RESULT_PREFIX = "@@RESULT@@ "
REPO = Path(__file__).resolve().parent.parent
NUM_CLASSES = 1000

# torchvision classifiers whose default input is not 224x224.
TV_INPUT_SIZE = {"inception_v3": 299}

# timm families for the --timm sweep (pretrained=False; built from their configs offline).
TIMM_MODELS = [
    "resnet50", "resnext50_32x4d", "seresnet50", "efficientnet_b0", "mobilenetv2_100",
    "mobilenetv3_large_100", "convnext_tiny", "convnextv2_atto", "vit_small_patch16_224",
    "deit_small_patch16_224", "deit3_small_patch16_224", "swin_tiny_patch4_window7_224",
    "regnety_016", "regnetx_016", "densenet121", "ghostnet_100", "mixnet_s", "rexnet_100",
    "cspresnet50", "cspdarknet53", "dla34", "dpn68", "hrnet_w18_small", "inception_v3",
    "levit_128", "mobilevit_s", "poolformer_s12", "resnest14d", "res2net50_26w_4s",
    "selecsls42b", "vgg11", "xception41", "tf_efficientnetv2_s", "coat_lite_tiny",
    "cait_xxs24_224", "convit_tiny", "efficientformer_l1", "efficientvit_b0", "fastvit_t8",
    "edgenext_small", "pvt_v2_b0", "twins_svt_small", "mixer_b16_224", "resmlp_12_224",
    "gmlp_s16_224", "nf_resnet50", "repvgg_a2", "mobileone_s0", "lcnet_050", "hgnet_tiny",
    "ese_vovnet19b_dw", "tinynet_a", "eva02_tiny_patch14_224", "botnet26t_256",
    "coatnet_0_rw_224", "maxvit_tiny_rw_224", "crossvit_tiny_240", "tnt_s_patch16_224",
]


def torchvision_models() -> list[str]:
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def build_model(name: str, zoo: str) -> tuple[Any, tuple[int, ...]]:
    """A freshly initialised classifier (random weights, eval mode) and its input shape."""
    import torch

    torch.manual_seed(0)
    if zoo == "torchvision":
        import torchvision

        model = torchvision.models.get_model(name, weights=None)
        size = TV_INPUT_SIZE.get(name, 224)
        shape: tuple[int, ...] = (1, 3, size, size)
    elif zoo == "timm":
        import timm

        model = timm.create_model(name, pretrained=False)
        shape = (1, *model.pretrained_cfg["input_size"])
    else:
        raise ValueError(f"unknown zoo {zoo!r}")
    return model.eval(), shape


def classifier_layers(model: Any) -> list[Any]:
    """The layers that produce the logits (Linear or 1x1 conv with NUM_CLASSES outputs)."""
    import torch.nn as nn

    found = []
    for m in model.modules():
        if isinstance(m, nn.Linear) and m.out_features == NUM_CLASSES:
            found.append(m)
        elif isinstance(m, nn.Conv2d) and m.out_channels == NUM_CLASSES:
            found.append(m)
    return found


def layer_shapes(model: Any) -> dict[str, tuple[int, ...]]:
    """Weight shapes of every conv and linear layer, by module name."""
    import torch.nn as nn

    return {n: tuple(m.weight.shape) for n, m in model.named_modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))
            and getattr(m, "weight", None) is not None}


# ----------------------------------------------------------------------------------------
# The two engines. Each prunes ``model`` in place at ``ratio`` and returns extra facts.
# ----------------------------------------------------------------------------------------

def prune_prunekit(model: Any, x: Any, ratio: float) -> dict[str, Any]:
    import prunekit

    result = prunekit.prune(model, x, ratio=ratio)
    unsupported: dict[str, int] = {}
    for reason in result.graph.unsupported:
        unsupported[reason.what] = unsupported.get(reason.what, 0) + 1
    return {"groups": len(result.graph.groups), "skipped": len(result.skipped),
            "skipped_names": result.skipped[:20], "unsupported_ops": unsupported}


def tp_num_heads(model: Any) -> dict[Any, int]:
    """Torch-Pruning's ``num_heads`` argument, as its examples build it.

    ``nn.MultiheadAttention`` modules (torchvision ViT) map to their own head count
    (examples/torchvision_models); timm-style attention blocks with a fused ``qkv`` Linear
    map that Linear to the head count (examples/transformers/prune_timm_vit.py).
    """
    import torch.nn as nn

    heads: dict[Any, int] = {}
    for m in model.modules():
        if isinstance(m, nn.MultiheadAttention):
            heads[m] = m.num_heads
        elif isinstance(getattr(m, "qkv", None), nn.Linear) and isinstance(
                getattr(m, "num_heads", None), int):
            heads[m.qkv] = m.num_heads
    return heads


def tp_fix_attributes(model: Any, pruner: Any) -> None:
    """Post-step attribute updates that Torch-Pruning's examples do by hand."""
    import torch.nn as nn

    try:
        from torchvision.models.vision_transformer import VisionTransformer
    except ImportError:  # pragma: no cover
        VisionTransformer = ()  # type: ignore[assignment]
    if isinstance(model, VisionTransformer):
        model.hidden_dim = model.conv_proj.out_channels
    for m in model.modules():
        qkv = getattr(m, "qkv", None)
        if isinstance(qkv, nn.Linear) and qkv in pruner.num_heads:
            m.num_heads = pruner.num_heads[qkv]
            if hasattr(m, "head_dim"):
                m.head_dim = qkv.out_features // (3 * m.num_heads)
            if hasattr(m, "attn_dim"):
                m.attn_dim = m.num_heads * m.head_dim


def prune_tp(model: Any, x: Any, ratio: float) -> dict[str, Any]:
    """Torch-Pruning 1.6 as its README shows: MetaPruner + L2 magnitude, local ratio.

    The timed part is the dependency-graph build (inside ``MetaPruner(...)``) and ``step()``.
    """
    import torch_pruning as tp

    imp = tp.importance.MagnitudeImportance(p=2)
    pruner = tp.pruner.MetaPruner(
        model, x, importance=imp, pruning_ratio=ratio, global_pruning=False,
        ignored_layers=classifier_layers(model), num_heads=tp_num_heads(model))
    pruner.step()
    return {"pruner": pruner}


ENGINES: dict[str, Callable[[Any, Any, float], dict[str, Any]]] = {
    "prunekit": prune_prunekit, "tp": prune_tp}


def finish_tool(tool: str, model: Any, facts: dict[str, Any]) -> dict[str, Any]:
    """Untimed clean-up after pruning (attribute fix-ups); returns JSON-safe facts."""
    if tool == "tp":
        tp_fix_attributes(model, facts.pop("pruner"))
    return facts


# ----------------------------------------------------------------------------------------
# Subprocess plumbing
# ----------------------------------------------------------------------------------------

def emit(result: dict[str, Any]) -> None:
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def run_worker(argv: list[str], timeout: float) -> dict[str, Any]:
    """Run ``python <argv>`` and return the JSON it emitted, or a status that says what broke."""
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                              timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else \
        f"exit code {proc.returncode}"
    return {"status": f"crash ({how}): {' | '.join(tail)[:300]}",
            "wall_s": time.perf_counter() - start}


def error_status(exc: BaseException, where: str = "") -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    prefix = f"{where}: " if where else ""
    return f"error: {prefix}{type(exc).__name__}: {first[:300]}"


# ----------------------------------------------------------------------------------------
# Memory
# ----------------------------------------------------------------------------------------

def status_gb(field: str) -> float:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``RssAnon``, ...) in GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    return float("nan")


class AnonPeak:
    """Samples ``RssAnon`` (memory not backed by a file) every few ms in a thread.

    ``ru_maxrss`` also counts pages of memory-mapped files (safetensors are read through
    mmap), which the kernel can drop at any time; the anonymous part is what the process
    really holds.
    """

    def __init__(self, every_s: float = 0.002) -> None:
        import threading

        self.peak = status_gb("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _run(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.peak = max(self.peak, status_gb("RssAnon"))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return max(self.peak, status_gb("RssAnon"))


# ----------------------------------------------------------------------------------------
# Markdown header
# ----------------------------------------------------------------------------------------

def cpu_model() -> str:
    """The CPU's model name and the kernel level PyTorch runs on it (figures that come
    from training differ between levels: see ATEN_CPU_CAPABILITY)."""
    from prunekit.environment import cpu_capability

    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} (torch CPU kernels: {cpu_capability()})"


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages (how busy the machine was), as text."""
    try:
        return " / ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


@dataclass(frozen=True)
class Environment:
    threads: int
    batch: str = "1"  # the batch size(s) the page measures with
    precision: str = "fp32"  # the number formats the page measures

    def lines(self) -> list[str]:
        import torch

        return [
            f"- machine: {cpu_model()}, {os.cpu_count()} logical cores, "
            f"{platform.system()} {platform.release()}",
            f"- torch {torch.__version__}, torchvision {version('torchvision')}, "
            f"timm {version('timm')}, torch-pruning {version('torch-pruning')}, "
            f"prunekit {version('prunekit')}, Python {platform.python_version()}",
            f"- CPU, {self.threads} threads (`torch.set_num_threads`), batch size {self.batch}, "
            f"{self.precision}",
            f"- command: `{command_line()}`",
        ]


def command_line() -> str:
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(REPO)
    except ValueError:
        pass
    return " ".join(["python", shlex.quote(str(script)), *map(shlex.quote, sys.argv[1:])])


#: A page's hand-written part starts at this line; regenerating the page keeps it.
KEEP_MARKER = "<!-- written by hand below: kept when the page is regenerated -->"


def write_markdown(path: str, title: str, env: Environment, body: list[str],
                   notes: list[str] = ()) -> None:
    from prunekit.files import atomic_write_text

    text = [f"# {title}", "", *env.lines(), f"- generated: {time.strftime('%Y-%m-%d %H:%M %Z')}",
            "", *notes, *([""] if notes else []), *body, ""]
    old = Path(path).read_text() if Path(path).exists() else ""
    if KEEP_MARKER in old:
        text.append(old[old.index(KEEP_MARKER):].rstrip("\n") + "\n")
    atomic_write_text(path, "\n".join(text))


def save_outputs(result: dict[str, Any], json_path: str, markdown_path: str,
                 render: Callable[[], str]) -> None:
    """Write ``result`` as JSON (creating its folder) and, when a path is given, the page
    ``render()`` makes; both atomically."""
    import json

    from prunekit.files import atomic_write_text

    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(json_path, json.dumps(result, indent=1))
    if markdown_path:
        atomic_write_text(markdown_path, render())


def ms_cell(ms: float, base_ms: float, digits: int = 2) -> str:
    """A latency table cell: milliseconds and the speed-up over ``base_ms``."""
    return f"{ms:.{digits}f} ({base_ms / ms:.2f}×)"


def add_latency_options(parser: Any, *, repeats: int = 20, max_length: int | None = 64) -> None:
    """The options every CPU-latency benchmark shares."""
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--threads", type=int, default=2)
    if max_length is not None:
        parser.add_argument("--max-length", type=int, default=max_length)
    parser.add_argument("--markdown", default=None)
