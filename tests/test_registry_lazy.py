"""Built-in models register on the first lookup, once, and importing `engine.models` reads no manifest."""

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(code: str) -> str:
    # A fresh interpreter: in this one the registry has long been filled by other tests.
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_import_reads_no_manifest_and_the_first_lookup_registers_the_builtins_once():
    out = _run("""
        import json
        from engine.zoo import manifest

        reads = []
        real_read = manifest.read
        manifest.read = lambda: (reads.append(1), real_read())[1]

        import engine.models
        from engine.models import registry

        after_import = (len(reads), registry._builtins, len(registry._REGISTRY))
        first = engine.models.names()
        second = engine.models.names()
        rows = engine.models.available()
        print(json.dumps({"after_import": after_import, "reads": len(reads), "state": registry._builtins,
                          "first": first, "second": second, "rows": [r["name"] for r in rows],
                          "zoo": sorted(real_read())}))
    """)
    import json

    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["after_import"] == [0, "pending", 0]
    assert seen["reads"] == 1 and seen["state"] == "done"
    assert seen["first"] == seen["second"] == seen["rows"]
    assert len(seen["first"]) == len(set(seen["first"]))
    assert set(seen["zoo"]) <= set(seen["first"])
    assert {"efficientnet-lite0", "resnet50"} <= set(seen["first"])


def test_threads_racing_for_the_first_lookup_all_see_every_model_registered_once():
    out = _run("""
        import json
        import threading
        import time
        from engine.zoo import manifest

        reads = []
        real_read = manifest.read

        def slow_read():
            reads.append(1)
            time.sleep(0.2)  # widen the window in which other threads arrive mid-registration
            return real_read()

        manifest.read = slow_read
        from engine import models

        start = threading.Barrier(8)
        results = []

        def look():
            start.wait()
            results.append(models.names())

        threads = [threading.Thread(target=look) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(json.dumps({"reads": len(reads), "results": results, "zoo": sorted(real_read())}))
    """)
    import json

    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["reads"] == 1
    assert len(seen["results"]) == 8
    full = seen["results"][0]
    assert all(r == full for r in seen["results"])
    assert set(seen["zoo"]) <= set(full)


def test_a_failed_first_registration_leaves_nothing_behind_and_is_retried():
    out = _run("""
        import json
        from engine.zoo import manifest

        real_read = manifest.read
        calls = []

        def flaky_read():
            calls.append(1)
            if len(calls) == 1:
                raise OSError("manifest unreadable")
            return real_read()

        manifest.read = flaky_read
        from engine import models
        from engine.models import registry

        try:
            models.names()
            failed = False
        except OSError:
            failed = True
        state = (registry._builtins, len(registry._REGISTRY))
        names = models.names()
        print(json.dumps({"failed": failed, "state": state, "names": names}))
    """)
    import json

    seen = json.loads(out.strip().splitlines()[-1])
    assert seen["failed"] is True
    # EfficientNet-Lite registers before the zoo: the failure must have taken those names back out.
    assert seen["state"] == ["pending", 0]
    assert len(seen["names"]) == len(set(seen["names"])) and "efficientnet-lite0" in seen["names"]
