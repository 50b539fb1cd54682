"""Layer (depth) pruning: remove whole transformer layers and whole residual blocks.

Blocks are found by one probe pass (residual modules whose output has the shape of their
input), scored on calibration data, and the least important are removed for real: Hugging
Face layers are deleted from their ``ModuleList`` (``layer_idx``, ``num_hidden_layers`` and
``layer_types`` follow, so ``generate()`` keeps working with a key/value cache); other blocks
become ``nn.Identity``.

Example::

    import torch, transformers
    from prunekit.depth import prune_depth

    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
        vocab_size=100)).eval()
    calibration = [torch.randint(0, 100, (2, 16)) for _ in range(4)]
    result = prune_depth(model, calibration, n_blocks=1, importance="cosine")
    print(result.removed, model.config.num_hidden_layers)   # e.g. ['model.layers.0'] 3
    model.generate(calibration[0], max_new_tokens=4, do_sample=False)

    # save and reload (the saved config has the new layer count; the plan is empty):
    from prunekit import Plan
    from prunekit.hf import load_pruned_transformers, save_pruned_transformers
    save_pruned_transformers(model, Plan(), "pruned")
    model = load_pruned_transformers("pruned")

For a torchvision ResNet, ``prune_depth(resnet, [images], n_blocks=2)`` replaces two
``BasicBlock``s without ``downsample`` by ``nn.Identity``. Removing a block is exact when its
residual branch outputs zero and :attr:`RemovableBlock.exact` holds (pre-norm transformers, ViT,
Swin, ConvNeXt, ResNet blocks on non-negative inputs); for post-norm layers (BERT) it is an
approximation. Non-Hugging Face models keep their module names, so a fresh model replays the
removal with :func:`remove_blocks` before loading the pruned ``state_dict``, or from a plan
that records it (:attr:`prunekit.Plan.blocks`, as :func:`prunekit.recover.choose_depth_width`
returns it; ``save_pruned`` / ``load_pruned`` then keep working).
"""

from .api import DepthResult, prune_depth
from .blocks import RemovableBlock, find_blocks
from .importance import (
                         DepthCriterion,
                         available_depth_criteria,
                         get_depth_criterion,
                         register_depth_criterion,
                         score_blocks,
                         skipped,
)
from .remove import remove_blocks

__all__ = ["DepthCriterion", "DepthResult", "RemovableBlock", "available_depth_criteria",
           "find_blocks", "get_depth_criterion", "prune_depth", "register_depth_criterion",
           "remove_blocks", "score_blocks", "skipped"]
