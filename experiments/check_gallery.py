"""Check the gallery's labels: every Lite model's top-1 on every photo (assets/images/labels.json).

For each photo in assets/images and each of EfficientNet-Lite0/1/2 (offline weights,
CPU), the top-1 ImageNet class and its probability, with the photo preprocessed as
the app does (engine.images.load: shorter side resized, centre crop). Prints one row
per photo and exits 1 if a photo lacks an entry in labels.json or a model's top-1
differs from the labelled class, except for the documented hard case (rocket, only
Lite0 names it a missile; see assets/README.md).

    PYTHONPATH=. python experiments/check_gallery.py [--markdown]   # ~10 s on 2 CPU cores
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from engine import images, models

MODELS = ("efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2")
HARD_CASES = {"rocket"}  # kept on purpose although the three models disagree


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--markdown", action="store_true", help="also print each photo as an assets/README.md table row"
    )
    args = parser.parse_args()
    labels = json.loads((images.GALLERY / "labels.json").read_text())
    nets = [models.load(name, device="cpu") for name in MODELS]
    names = nets[0].class_names
    failures = []
    header = (
        f"{'photo':20s} {'label (index)':28s} "
        + " ".join(f"{'Lite' + str(i) + ' top-1':>30s}" for i in range(3))
        + "  ok"
    )
    print(header)
    print("-" * len(header))
    for name, path in images.gallery().items():
        entry = labels.get(path.name)
        if entry is None:
            failures.append(f"{path.name}: no entry in labels.json")
            continue
        want = int(entry["imagenet_index"])
        cells, own, tops = [], [], []
        with torch.no_grad():
            for net in nets:
                p = net(images.load(path, net)).softmax(-1)[0]
                top = int(p.argmax())
                tops.append(top)
                own.append(float(p[want]))
                cells.append(f"{names[top][:22]} {float(p[top]):.2f}")
        ok = all(t == want for t in tops)
        mark = "yes" if ok else ("hard case" if name in HARD_CASES else "NO")
        if not ok and name not in HARD_CASES:
            failures.append(f"{path.name}: labelled {names[want]} ({want}), top-1 " + ", ".join(names[t] for t in tops))
        print(
            f"{path.name:20s} {names[want][:21] + f' ({want})':28s} "
            + " ".join(f"{c:>30s}" for c in cells)
            + f"  {mark}"
        )
        if args.markdown:
            cols = [f"{v:.2f}" if t == want else f"— ({names[t]})" for v, t in zip(own, tops)]
            print(
                f"    | {path.name} | {names[want]} ({want}) | "
                + " | ".join(cols)
                + f" | {entry['source']} | {entry['licence']} |"
            )
    missing = set(labels) - {p.name for p in images.gallery().values()}
    failures += [f"{m}: in labels.json but not in assets/images" for m in sorted(missing)]
    for f in failures:
        print("FAIL", f, file=sys.stderr)
    print(f"{len(images.gallery())} photos, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    torch.set_num_threads(2)
    sys.exit(main())
