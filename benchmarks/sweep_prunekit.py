"""One torchvision model through prunekit at ratio 0.5: status, MACs reduction, skipped groups.

The table in docs/benchmarks/coverage.md came from running it once per model, each in its
own process (one thread):

    for n in $(python -c "import torchvision as t; print(*t.models.list_models(module=t.models))"); do
        timeout 300 python benchmarks/sweep_prunekit.py $n
    done
"""
import sys, time, traceback; sys.path.insert(0, "tests/engine")
import torch, torch.nn as nn, torchvision, timm
from prunekit.testing import run_exact_check
from test_exact_handlers import randomize
cases = {
 "resnet18": (lambda: torchvision.models.resnet18(num_classes=10), (1,3,32,32)),
 "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(num_classes=10), (1,3,32,32)),
 "mobilenet_v3_small": (lambda: torchvision.models.mobilenet_v3_small(num_classes=10), (1,3,32,32)),
 "shufflenet": (lambda: torchvision.models.shufflenet_v2_x0_5(num_classes=10), (1,3,32,32)),
 "squeezenet": (lambda: torchvision.models.squeezenet1_1(num_classes=10), (1,3,64,64)),
 "densenet121": (lambda: torchvision.models.densenet121(num_classes=10), (1,3,32,32)),
 "efficientnet_b0": (lambda: torchvision.models.efficientnet_b0(num_classes=10), (1,3,32,32)),
 "regnet_y_400mf": (lambda: torchvision.models.regnet_y_400mf(num_classes=10), (1,3,32,32)),
 "resnext50": (lambda: torchvision.models.resnext50_32x4d(num_classes=10), (1,3,32,32)),
 "googlenet": (lambda: torchvision.models.googlenet(num_classes=10, aux_logits=False, init_weights=False), (1,3,64,64)),
 "vit_tiny": (lambda: timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, num_classes=10), (1,3,32,32)),
 "convnext_atto": (lambda: timm.create_model("convnext_atto", num_classes=10), (1,3,32,32)),
 "swin_t": (lambda: torchvision.models.swin_t(num_classes=10), (1,3,64,64)),
 "vit_b_32": (lambda: torchvision.models.vit_b_32(num_classes=10, image_size=64), (1,3,64,64)),
}
for name in (sys.argv[1:] or cases):
    make, shape = cases[name]
    t = time.time()
    try:
        torch.manual_seed(0)
        m = randomize(make())
        x = torch.randn(*shape, dtype=torch.float64)
        r = run_exact_check(m, x, ratio=0.5)
        with torch.no_grad(): scale = float(r.model(x).abs().max())
        print(f"{name}: scale={scale:.2e} rel={r.max_diff/max(scale,1e-30):.2e} diff={r.max_diff:.2e} params {r.params_before}->{r.params_after} skipped={len(r.plan.settings['skipped_groups'])} t={time.time()-t:.1f}s", flush=True)
    except Exception as e:
        print(f"{name}: ERROR {type(e).__name__}: {str(e)[:300]}", flush=True)
