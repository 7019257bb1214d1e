"""The bench scripts run (quick mode): they measure, tests never assert times."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import attack_times  # noqa: E402


def test_attack_times_quick(capsys):
    assert attack_times.main(["--quick", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    names = [r["attack"] for r in report["rows"]]
    assert names == ["fgsm", "bim", "pgd", "mifgsm", "cw", "deepfool", "square", "forward+backward"]
    for row in report["rows"]:
        assert row["min_s"] <= row["median_s"] <= row["max_s"]
