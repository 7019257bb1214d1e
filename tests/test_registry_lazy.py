"""Built-in models register on the first lookup, once, and importing `engine.models` reads no manifest.

One fresh interpreter (in this one the registry has long been filled by other tests) plays three first lookups,
emptying the registry between them: a plain one, eight threads racing, and one whose manifest read fails."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import json
import threading
import time
from engine.zoo import manifest

real_read = manifest.read
reads = []
manifest.read = lambda: (reads.append(1), real_read())[1]

import engine.models
from engine.models import registry

seen = {"zoo": sorted(real_read())}
after_import = (len(reads), registry._builtins, len(registry._REGISTRY))
first, second = engine.models.names(), engine.models.names()
rows = engine.models.available()
seen["plain"] = {"after_import": after_import, "reads": len(reads), "state": registry._builtins,
                 "first": first, "second": second, "rows": [r["name"] for r in rows]}


def empty():
    registry._REGISTRY.clear()
    registry._builtins = "pending"
    reads.clear()


empty()


def slow_read():
    reads.append(1)
    time.sleep(0.2)  # widen the window in which other threads arrive mid-registration
    return real_read()


manifest.read = slow_read
start = threading.Barrier(8)
results = []


def look():
    start.wait()
    results.append(engine.models.names())


threads = [threading.Thread(target=look) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
seen["race"] = {"reads": len(reads), "results": results}

empty()


def flaky_read():
    reads.append(1)
    if len(reads) == 1:
        raise OSError("manifest unreadable")
    return real_read()


manifest.read = flaky_read
try:
    engine.models.names()
    failed = False
except OSError:
    failed = True
state = (registry._builtins, len(registry._REGISTRY))
seen["flaky"] = {"failed": failed, "state": state, "names": engine.models.names()}
print(json.dumps(seen))
"""


def test_first_lookups_register_the_builtins_once_plainly_in_a_race_and_after_a_failure():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])

    plain = seen["plain"]  # importing reads no manifest; the first lookup registers every built-in once
    assert plain["after_import"] == [0, "pending", 0]
    assert plain["reads"] == 1 and plain["state"] == "done"
    assert plain["first"] == plain["second"] == plain["rows"]
    assert len(plain["first"]) == len(set(plain["first"]))
    assert set(seen["zoo"]) <= set(plain["first"])
    assert {"efficientnet-lite0", "resnet50"} <= set(plain["first"])

    race = seen["race"]  # eight threads at once: one registers, all see every model, in the same order
    assert race["reads"] == 1 and len(race["results"]) == 8
    assert all(r == plain["first"] for r in race["results"])

    flaky = seen["flaky"]  # a failed registration leaves nothing behind and is retried
    assert flaky["failed"] is True
    # EfficientNet-Lite registers before the zoo: the failure must have taken those names back out.
    assert flaky["state"] == ["pending", 0]
    assert flaky["names"] == plain["first"]


TORCHVISION_ON_FIRST_USE = """
import json
import sys

from engine import attacks, domains, models, report

model = models.load("fmnist-lenet-0")
x = domains.of(model).load("fmnist:0", model)
attacks.run("fgsm", model, x, eps=0.1)
report.environment("cpu")
before = "torchvision" in sys.modules
rows = {r["name"]: r for r in models.available()}
print(json.dumps({"before": before, "after": "torchvision" in sys.modules, "resnet18": rows["resnet18"]}))
"""


def test_torchvision_is_imported_only_where_a_torchvision_model_is_looked_at():
    """A command or worker process that attacks a Fashion-MNIST model never imports torchvision (a second of
    torch._dynamo at every start); asking whether the torchvision models load here does."""
    done = subprocess.run(
        [sys.executable, "-c", TORCHVISION_ON_FIRST_USE], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"] is False and seen["after"] is True
    resnet = seen["resnet18"]  # its weights are in the torch cache, or the row says where to get them
    assert resnet["available"] or "download https://download.pytorch.org/" in resnet["reason"], resnet
