"""What running a model through ONNX costs: torchvision's ResNet-18 against the same network exported to ONNX and
loaded back by engine.models.formats (onnx2torch: one PyTorch module per ONNX node).

Both are Classifiers with the engine's inference rewrites (engine/models/inference.py): the torchvision network
gets its batch norms folded and runs channels-last; the ONNX export arrives with its batch norms already folded
into the convolutions, and runs channels-last too. Each case times one forward + backward to the input (the step
every gradient attack repeats) at 224 px, alternating ABBA, and prints the ratio onnx / torchvision per
repetition with its spread, and the largest logit difference.

    python bench/onnx_overhead.py --repeats 9
    python bench/onnx_overhead.py --quick      # CI smoke mode
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import ROOT, cell, parser, spread, timed  # noqa: E402

sys.path.insert(0, str(ROOT))
from engine.models import Classifier, formats, torchvision_zoo  # noqa: E402

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
BATCHES = (1, 8)
QUICK_BATCHES = (1, 2)


def models(size: int) -> tuple[Classifier, Classifier]:
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    with torch.no_grad():  # batch norms as after training, so that folding them is not the identity
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1), m.running_var.uniform_(0.5, 1.5)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet18.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's exporter warns about its own deprecation
            torch.onnx.export(
                net,
                (torch.zeros(1, 3, size, size),),
                path,
                dynamo=False,
                input_names=["x"],
                output_names=["logits"],
                dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=17,
            )
        onnx_model = formats.load(path, meta={"mean": MEAN, "std": STD})
    blocks, cam = torchvision_zoo.block_names("resnet18", net)
    tv_model = Classifier(
        net,
        name="resnet18",
        domain="imagenet",
        input_size=(3, size, size),
        class_names=[f"class {i}" for i in range(1000)],
        mean=MEAN,
        std=STD,
        block_names=blocks,
        cam_layer=cam,
    )
    return tv_model, onnx_model


def gradient_step(model, x, y):
    x = x.clone().requires_grad_(True)
    return torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), y), x)[0]


def measure(tv_model, onnx_model, n: int, size: int, repeats: int) -> dict:
    x = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(n))
    with torch.no_grad():
        logits_tv, logits_onnx = tv_model(x), onnx_model(x)
    y = logits_tv.argmax(1)
    pair = {"torchvision": tv_model, "onnx": onnx_model}
    for m in pair.values():  # untimed first runs: allocator growth, oneDNN's first-call kernel choice
        gradient_step(m, x, y)
    times = {label: [] for label in pair}
    for rep in range(repeats):
        order = list(pair.items())
        for label, m in order if rep % 2 == 0 else order[::-1]:
            times[label].append(timed(lambda: gradient_step(m, x, y))[0])
    per_rep = [a / b for a, b in zip(times["onnx"], times["torchvision"])]
    return {
        "batch": n,
        "size": size,
        **{k: spread(v) for k, v in times.items()},
        "ratio": {"median": statistics.median(per_rep), "min": min(per_rep), "max": max(per_rep)},
        "max_logit_difference": float((logits_onnx - logits_tv).abs().max()),
        "logit_scale": float(logits_tv.abs().max()),
    }


def main(argv=None) -> int:
    args = parser(__doc__, repeats=9, quick_help="64 px, batches 1 and 2, 1 repetition", device=False).parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if args.quick else 2)  # the machine the figures are for: 2 cores
    size = 64 if args.quick else 224
    try:
        tv_model, onnx_model = models(size)
        rows = [
            measure(tv_model, onnx_model, n, size, 1 if args.quick else args.repeats)
            for n in (QUICK_BATCHES if args.quick else BATCHES)
        ]
    finally:
        torch.set_num_threads(threads)
    rewrites = {
        label: {"folded_batch_norms": m.folded_batch_norms, "channels_last": m.channels_last}
        for label, m in (("torchvision", tv_model), ("onnx", onnx_model))
    }
    if args.json:
        print(json.dumps({"torch": torch.__version__, "rewrites": rewrites, "rows": rows}, indent=2))
        return 0
    print(
        f"torch {torch.__version__}, {1 if args.quick else 2} threads; ResNet-18, random weights; one forward + "
        "backward to the input; seconds: median (min–max); ratio onnx/torchvision per repetition, "
        "median (min–max)"
    )
    for label, r in rewrites.items():
        print(
            f"{label}: {r['folded_batch_norms']} batch norms folded by the engine, "
            f"channels-last {'on' if r['channels_last'] else 'off'}"
        )
    print("\n| batch | px | torchvision | onnx | onnx/torchvision | largest logit difference |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['batch']} | {r['size']} | {cell(r['torchvision'])} | {cell(r['onnx'])} "
            f"| {r['ratio']['median']:.2f}× ({r['ratio']['min']:.2f}–{r['ratio']['max']:.2f}) "
            f"| {r['max_logit_difference']:.1e} (of {r['logit_scale']:.1f}) |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
