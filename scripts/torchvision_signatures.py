"""Measure every torchvision classification architecture's state_dict signature into assets/ (after a torchvision
upgrade): the layer names and shapes a user's weights file is matched against to name its architecture.

    python scripts/torchvision_signatures.py      # a few minutes on two cores
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.models.formats import torchvision as tv  # noqa: E402


def main() -> int:
    signatures = {}
    for arch in tv.ARCHITECTURES:
        shapes, head = tv.measure(arch)
        signatures[arch] = [{k: list(v) for k, v in shapes.items()}, sorted(head)]
        print(arch, len(shapes), file=sys.stderr)
    data = json.dumps({"torchvision": tv.torchvision.__version__, "signatures": signatures}, separators=(",", ":"))
    # mtime=0: the same signatures give the same bytes, so a rerun leaves git with nothing to commit.
    tv.SIGNATURES.write_bytes(gzip.compress(data.encode(), mtime=0))
    print(f"{tv.SIGNATURES}: {len(signatures)} architectures", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
