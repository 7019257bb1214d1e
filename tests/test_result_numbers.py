"""The Explorer's and the deck's numbers, files and words come from the engine and say what the result holds."""

from __future__ import annotations

import csv
import io
import json

import pytest

from engine import attacks, report
from engine.analysis import panels, slides


@pytest.fixture(scope="module")
def fgsm_result(digits):
    model, x, _ = digits
    result = attacks.run("fgsm", model, x[:1], eps=0.1)
    return model, result, panels.explorer_panels(model, result, [model])


def test_the_csv_holds_the_sizes_and_every_models_top_k(fgsm_result):
    _, _, found = fgsm_result
    record, predictions = found["record"], found["predictions"]
    rows = list(csv.reader(io.StringIO(report.numbers_csv(record, predictions))))
    blank = rows.index([])
    sizes = dict(rows[1:blank])
    example = record["examples"][0]
    assert float(sizes["linf"]) == pytest.approx(example["linf"]) and sizes["success"] == str(example["success"])
    table = rows[blank + 2 :]
    assert len(table) == sum(len(p["before"]) + len(p["after"]) for p in predictions)
    for when in ("before", "after"):  # each model's probabilities, as ranked, are the ones it gave
        shown = [float(r[6]) for r in table if r[0] == predictions[0]["model"] and r[1] == "white-box" and r[2] == when]
        assert shown == pytest.approx([r["probability"] for r in predictions[0][when]], abs=1e-6)


def test_the_files_are_the_result_and_its_record(fgsm_result):
    _, result, found = fgsm_result
    files = {
        name: (data, mime)
        for _, data, name, mime in report.result_files(result, found["record"], found["predictions"], "digit 0")
    }
    assert set(files) == {"adversarial.png", "perturbation.png", "perturbation.npy", "attack.json", "attack.csv"}
    assert files["adversarial.png"][0]().startswith(b"\x89PNG")  # made only when asked for
    saved = json.loads(files["attack.json"][0])
    assert saved["image"] == "digit 0" and saved["black_box"] == found["predictions"][1:]
    assert saved["examples"] == found["record"]["examples"]


def test_sizes_name_the_work_a_result_took():
    row = {"l0_pct": 12.5, "l2": 1.0, "linf": 2 / 255, "ssim": 0.9, "iterations": 7, "queries": None}
    numbers = {label: value for label, value, _ in report.size_numbers(row, 1.5)}
    assert numbers["Iterations"] == "7" and "Queries" not in numbers and numbers["Time"] == "1.50 s"
    queried = {label: value for label, value, _ in report.size_numbers(dict(row, queries=300), 1.5)}
    assert queried["Queries"] == "300" and "Iterations" not in queried
    slide = {label: value for label, value, _ in slides.attack_items(dict(row, queries=3000))}
    assert slide["L∞ (of 255 levels)"] == "2.0" and slide["Queries"] == "3,000"


def test_the_eps_slider_reads_the_grid_at_the_chosen_eps(fgsm_result):
    model, result, _ = fgsm_result
    found = panels.eps_panels([model], result)
    assert found["run_eps"] in found["eps"]
    view = panels.eps_view(found, found["run_eps"], "zero")
    i = view["index"]
    assert found["eps"][i] == found["run_eps"]
    assert view["answers"].startswith(f"{model.name}: {found['top'][model.name][i][0]['label']}")
    assert [c["p"] for c in view["curves"]] == found["source"][model.name]


def test_transfer_items_count_black_boxes_only_when_there_are_some():
    one = [
        {
            "model": "a",
            "role": "white-box",
            "before": [{"index": 0, "label": "x", "probability": 0.9}],
            "after": [{"index": 1, "label": "y", "probability": 0.8}],
            "fooled": True,
        }
    ]
    assert [label for label, _, _ in slides.transfer_items(slides.transfer_numbers(one, 0))] == ["Models fooled"]
    two = one + [dict(one[0], model="b", role="black-box", fooled=False)]
    items = slides.transfer_items(slides.transfer_numbers(two, 0))
    assert items == [("Models fooled", "1 of 2", None), ("Black boxes fooled", "0 of 1", "black-box model")]
