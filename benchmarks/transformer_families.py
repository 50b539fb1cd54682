"""Transformer families at their base sizes: prune at 30% and 50%, check the output shape, and
time dense against pruned on this CPU.

    python benchmarks/transformer_families.py --markdown docs/benchmarks/transformer_families.md

Every model is built from its configuration with random weights (no downloads): Hugging Face
BERT, GPT-2, OPT, LLaMA, Mistral and Qwen2 (125M-class configurations), Hugging Face ViT,
timm ViT and DeiT, torchvision ViT-B/16 and Swin-T. Each is pruned with ``prunekit.prune``
(L2 magnitude, the same ratio in every group, whole attention heads: ``split_units="outer"``;
with grouped-query attention whole key/value groups) and timed with ``prunekit.measure``.
Random weights do not change the shapes or the time, so the speed-ups are those of a trained
model of the same shapes; accuracy is out of scope here (see the MiniLM pages).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any
from collections.abc import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Environment, add_latency_options, ms_cell, write_markdown  # noqa: E402

import prunekit  # noqa: E402
from prunekit.measure import count_macs, count_parameters, measure_latency  # noqa: E402

DECODER = dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
               num_attention_heads=12, num_key_value_heads=4, vocab_size=32000)


def _hf(config: str, model: str, **settings: Any) -> Callable[[], torch.nn.Module]:
    def make() -> torch.nn.Module:
        import transformers

        return getattr(transformers, model)(getattr(transformers, config)(**settings))
    return make


def _timm(name: str) -> Callable[[], torch.nn.Module]:
    def make() -> torch.nn.Module:
        import timm

        return timm.create_model(name, pretrained=False)
    return make


def _torchvision(name: str) -> Callable[[], torch.nn.Module]:
    def make() -> torch.nn.Module:
        import torchvision

        return torchvision.models.get_model(name, weights=None)
    return make


#: family -> (factory, what it is, input kind)
FAMILIES: dict[str, tuple[Callable[[], torch.nn.Module], str, str]] = {
    "hf-bert": (_hf("BertConfig", "BertForSequenceClassification"),
                "BERT-base, sequence classification", "text"),
    "hf-gpt2": (_hf("GPT2Config", "GPT2LMHeadModel"), "GPT-2 small (124M), LM head", "text"),
    "hf-opt": (_hf("OPTConfig", "OPTForCausalLM"), "OPT-125M shape, LM head", "text"),
    "hf-llama": (_hf("LlamaConfig", "LlamaForCausalLM", **DECODER),
                 "LLaMA, 12 layers × 768, 12 q / 4 kv heads", "text"),
    "hf-mistral": (_hf("MistralConfig", "MistralForCausalLM", **DECODER),
                   "Mistral, 12 layers × 768, 12 q / 4 kv heads", "text"),
    "hf-qwen2": (_hf("Qwen2Config", "Qwen2ForCausalLM", **DECODER),
                 "Qwen2, 12 layers × 768, 12 q / 4 kv heads", "text"),
    "hf-vit": (_hf("ViTConfig", "ViTForImageClassification"), "ViT-B/16 224", "image"),
    "timm-vit": (_timm("vit_base_patch16_224"), "vit_base_patch16_224", "image"),
    "timm-deit": (_timm("deit_small_patch16_224"), "deit_small_patch16_224", "image"),
    "torchvision-vit": (_torchvision("vit_b_16"), "vit_b_16", "image"),
    "torchvision-swin": (_torchvision("swin_t"), "swin_t", "image"),
}


def example(kind: str, batch: int, seq: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if kind == "text":
        return torch.randint(0, 1000, (batch, seq), generator=g)
    return torch.randn(batch, 3, 224, 224, generator=g)


def first_output(out: Any) -> torch.Tensor:
    return out.logits if hasattr(out, "logits") else out


def latencies(model: torch.nn.Module, kind: str, args: argparse.Namespace) -> list[float]:
    return [measure_latency(model, example(kind, b, args.seq), warmup=2, repeats=args.repeats,
                            threads=args.threads).median_ms for b in (1, args.batch)]


def run_family(family: str, ratios: list[float], args: argparse.Namespace) -> list[dict[str, Any]]:
    make, what, kind = FAMILIES[family]
    x = example(kind, 1, args.seq)
    torch.manual_seed(0)
    dense = make().eval()
    with torch.no_grad():
        shape = first_output(dense(x)).shape
    base = {"macs": count_macs(dense, x), "params": count_parameters(dense),
            "ms": latencies(dense, kind, args)}
    rows = [{"family": family, "what": what, "ratio": 0.0, "ok": "yes", **base, "skipped": 0,
             "seconds": 0.0}]
    for ratio in ratios:
        model = make().eval()
        model.load_state_dict(dense.state_dict())
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = prunekit.prune(model, x, ratio=ratio, split_units="outer")
        seconds = time.perf_counter() - start
        with torch.no_grad():
            ok = first_output(model(x)).shape == shape
        rows.append({"family": family, "what": what, "ratio": ratio,
                     "ok": "yes" if ok else "NO", "macs": count_macs(model, x),
                     "params": count_parameters(model), "ms": latencies(model, kind, args),
                     "skipped": len(result.skipped), "seconds": seconds, "base": base})
        print(f"{family} {ratio:.0%}: {base['macs'] / rows[-1]['macs']:.2f}x MACs, "
              f"{[round(m, 1) for m in rows[-1]['ms']]} ms", file=sys.stderr, flush=True)
    again = latencies(dense, kind, args)  # timed before and after: a slow spell cannot
    base["ms"] = [min(a, b) for a, b in zip(base["ms"], again)]  # inflate the speed-ups
    return rows


def table(rows: list[dict[str, Any]], batch: int) -> list[str]:
    lines = ["| family | model | ratio | output shape kept | groups left whole | prune s | "
             "params (M) | MACs× | params× | batch 1 ms (speed-up) | "
             f"batch {batch} ms (speed-up) | η batch {batch} |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        base = r.get("base", r)
        macs_x = base["macs"] / r["macs"]
        speed = base["ms"][1] / r["ms"][1]
        lines.append(
            f"| {r['family']} | {r['what']} | {r['ratio']:.0%} | {r['ok']} | {r['skipped']} | "
            f"{r['seconds']:.1f} | {r['params'] / 1e6:.1f} | {macs_x:.2f} | "
            f"{base['params'] / r['params']:.2f} | {ms_cell(r['ms'][0], base['ms'][0], 1)} | "
            f"{ms_cell(r['ms'][1], base['ms'][1], 1)} | {speed / macs_x:.2f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", default=",".join(FAMILIES))
    ap.add_argument("--ratios", default="0.3,0.5")
    ap.add_argument("--seq", type=int, default=64, help="tokens per sequence (text models)")
    ap.add_argument("--batch", type=int, default=8, help="the larger batch size timed")
    add_latency_options(ap, repeats=5, max_length=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    unknown = set(args.families.split(",")) - set(FAMILIES)
    if unknown:
        ap.error(f"unknown families {sorted(unknown)}; choose from {sorted(FAMILIES)}")
    ratios = [float(r) for r in args.ratios.split(",")]
    start = time.perf_counter()
    rows = [row for family in args.families.split(",") for row in run_family(family, ratios, args)]
    lines = table(rows, args.batch)
    print("\n".join(lines))
    if args.markdown:
        notes = [
            "- every model built from its configuration with random weights (no downloads); "
            "text models take token ids, image models 3×224×224 images",
            "- pruned with `prunekit.prune(model, x, ratio=r, split_units=\"outer\")`: L2 "
            "magnitude, the same ratio in every group, whole attention heads (grouped-query "
            "attention: whole key/value groups), FFN neurons, and the hidden size where the "
            "model's output does not expose it; the output shape is checked against the dense "
            "model's",
            "- 'groups left whole': groups whose pruning would break the model's own forward "
            "(`PruneResult.skip_reasons`); torchvision's Swin ties each attention's width to "
            "its stage width, so whole heads go together with their slice of the stage",
            f"- latency: `prunekit.measure.measure_latency`, fp32, {args.threads} threads, "
            f"median of {args.repeats} runs after 2 warm-up runs, batch 1 and {args.batch}; "
            f"text models at {args.seq} tokens; the dense model is timed before and after its "
            "pruned versions and the lower median is used; η = latency speed-up ÷ MACs "
            "reduction",
            f"- total runtime {time.perf_counter() - start:.0f} s; this is a shared 2-core "
            "virtual machine, so single cells are rough (expect ±15%)",
        ]
        env = Environment(args.threads, f"1 when pruning, 1 and {args.batch} when timing")
        write_markdown(args.markdown, "Transformer families: prune at 30% and 50%, dense vs "
                       "pruned latency on CPU", env, lines, notes)


if __name__ == "__main__":
    main()
