"""The one-click seed report: one section per applicable check, nothing fetched from the network, pictures that
decode, cancels that give a PARTIAL file with the finished checks only, and every name escaped."""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from html.parser import HTMLParser

import own_world
import pytest
from PIL import Image

from engine import datasets, domains, models, seed_report
from engine.cli import main
from engine.seed_report import figures
from engine.seed_report.base import Figure, Section, Table

MODEL = "fmnist-lenet-0"
HOSTILE = '<script>alert("x")</script><img src=http://evil.example/x onerror=alert(1)>&amp;'


@pytest.fixture(scope="module")
def lenet():
    return models.load(MODEL, device="cpu")


def _sections(html: str) -> list[str]:
    return re.findall(r'<section class="check" id="([^"]+)"', html)


class _Tags(HTMLParser):
    """Every tag the browser would build, with its attributes (text that merely looks like a tag is not one)."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _assert_offline(html: str) -> None:
    """No tag that fetches or runs anything, no URL but data: ones, and every picture a PNG that decodes."""
    tags = _Tags(html).tags
    assert not {t for t, _ in tags} & {"script", "link", "iframe", "object", "embed"}
    links = [v for _, attrs in tags for k, v in attrs.items() if k in ("src", "href", "xlink:href")]
    assert all(v.startswith("data:") for v in links), links
    pictures = [attrs["src"] for t, attrs in tags if t == "img"]
    assert all(p.startswith("data:image/png;base64,") for p in pictures)
    for data in pictures:
        with Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[1], validate=True))) as picture:
            picture.load()
            assert min(picture.size) > 8


@pytest.mark.slow
def test_the_cli_writes_one_section_per_check_with_figures_embedded(tmp_path, capsys, lenet):
    out = tmp_path / "report.html"
    assert main(["report", "--model", MODEL, "--quick", "--out", str(out), "--device", "cpu", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    todo, skipped = seed_report.plan(lenet)
    # Fashion-MNIST's LeNet has layers, sources and judges: every check applies, so every renderer is exercised.
    assert [c.name for c in todo] == [c.name for c in seed_report.CHECKS] and not skipped
    html = out.read_text(encoding="utf-8")
    assert _sections(html) == [c.name for c in todo] == [c["name"] for c in summary["checks"]]
    assert not summary["partial"] and "PARTIAL" not in html
    assert all("error" not in c for c in summary["checks"]), [c.get("error") for c in summary["checks"]]
    assert html.count("<b>Paper:</b>") == html.count("<b>Here:</b>") == len(todo)
    assert html.count("<svg") >= 3 and html.count("<img") >= 3  # charts and picture grids of several checks
    assert "http://" not in html and "https://" not in html
    _assert_offline(html)


def test_a_cancel_after_the_first_check_gives_a_partial_report_of_that_check(lenet):
    def cancel_second(step, total, state):
        return state["part"] < 2

    report = seed_report.run(lenet, names=["jsma-variants", "checkerboard"], tiny=True, callback=cancel_second)
    assert report["partial"] and report["not_run"] == ["checkerboard"]
    assert [c["name"] for c in report["checks"]] == ["jsma-variants"]
    html = seed_report.render(report)
    assert _sections(html) == ["jsma-variants"]
    assert "PARTIAL REPORT" in html and "(PARTIAL)</title>" in html
    _assert_offline(html)


@pytest.mark.parametrize("name", ["checkerboard", "layer-predictor", "jsma-curve", "mask-tradeoff", "source-counts"])
def test_a_check_cut_short_is_left_out_whole(lenet, name):
    calls = []

    def cancel_inside(step, total, state):
        calls.append(step)
        return len(calls) < 3  # the check's own progress, after its start

    report = seed_report.run(lenet, names=[name], tiny=True, callback=cancel_inside)
    assert report["partial"] and report["checks"] == [] and report["not_run"] == [name]
    assert _sections(seed_report.render(report)) == []


def test_hostile_model_names_are_escaped(lenet):
    model = models.load(MODEL, device="cpu")
    model.name = HOSTILE
    html = seed_report.render(seed_report.run(model, names=["checkerboard"], tiny=True))
    assert "<script" not in html and "<img src=http" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    _assert_offline(html)


def test_every_string_of_a_section_is_escaped():
    chart = figures.line_chart([(HOSTILE, [0, 1], [1.0, 2.0])], HOSTILE, HOSTILE)
    section = Section(
        {HOSTILE: HOSTILE, "nested": {"k": HOSTILE}},
        HOSTILE,
        [Table(HOSTILE, [HOSTILE], [[HOSTILE], [None], [0.123456]])],
        [Figure(HOSTILE, svg=chart, caption=HOSTILE)],
        [HOSTILE],
    )
    entry = {k: HOSTILE for k in ("name", "title", "seed", "claim", "paper")}
    report = {
        "model": HOSTILE,
        "domain": HOSTILE,
        "size": "tiny",
        "seed": 0,
        "made": HOSTILE,
        "environment": {"device": HOSTILE},
        "checks": [
            {**entry, "seconds": 1.0, "section": section},
            {**entry, "seconds": 1.0, "section": None, "error": HOSTILE},
        ],
        "skipped": [{"name": HOSTILE, "title": HOSTILE, "seed": HOSTILE, "reason": HOSTILE}],
        "partial": True,
        "not_run": [HOSTILE],
        "seconds": 2.0,
    }
    html = seed_report.render(report)
    assert "<script" not in html and "<img src=http" not in html
    _assert_offline(html)
    assert "0.1235" in html and "—" in html


def test_a_users_model_gets_the_checks_its_images_and_models_allow():
    model = own_world.classifier("white", name="own-report")
    assert seed_report.plan(model)[0] == []  # no labelled images yet: nothing applies, each check says why
    images = datasets.open_zip(own_world.zip_bytes())
    model.domain_record = datasets.as_domain(domains.of(model), images, "zip:r", model)
    single = {"jsma-variants", "jsma-curve", "checkerboard", "mask-fgsm", "mask-tradeoff", "patch-distance"}
    judged = {"aa-transfer", "layer-predictor"}
    todo, skipped = seed_report.plan(model)
    assert {c.name for c in todo} == single
    assert {s["name"] for s in skipped} == judged | {"recognisable", "source-counts"}
    # The user's black box lets AA's checks run; noisy multi-model averaging still needs other source models, and
    # the source-count curve the Fashion-MNIST ensemble.
    todo, skipped = seed_report.plan(model, blacks=[own_world.classifier("black")])
    assert {c.name for c in todo} == single | judged
    assert [s["name"] for s in skipped] == ["recognisable", "source-counts"]


@pytest.mark.slow
def test_the_cli_reports_on_a_users_model_file_its_data_and_black_box(tmp_path, capsys):
    for which in ("white", "black"):
        (tmp_path / f"{which}.pt2").write_bytes(own_world.export_bytes(which))
        (tmp_path / f"{which}.json").write_text(json.dumps(own_world.META))
    with zipfile.ZipFile(own_world.FIXTURE / "images.zip") as z:
        z.extractall(tmp_path / "data")
    out = tmp_path / "own.html"
    argv = ["report", "--model", str(tmp_path / "white.pt2"), "--data", str(tmp_path / "data"), "--quick"]
    argv += ["--black", str(tmp_path / "black.pt2"), "--checks", "aa-transfer", "checkerboard", "--out", str(out)]
    code, said = main([*argv, "--json"]), capsys.readouterr()
    assert code == 0, said.err[-500:]
    summary = json.loads(said.out)
    assert [c["name"] for c in summary["checks"]] == ["aa-transfer", "checkerboard"] and not summary["skipped"]
    assert all("error" not in c for c in summary["checks"]), [c.get("error") for c in summary["checks"]]
    html = out.read_text(encoding="utf-8")
    assert "on shapes images" in html and "<td>black boxes</td><td>black</td>" in html  # the user's, named
    _assert_offline(html)


def test_the_cli_refuses_a_model_no_check_applies_to(capsys):
    assert main(["report", "--model", MODEL, "--checks", "no-such-check", "--quick"]) == 2
    assert "unknown seed check" in capsys.readouterr().err


@pytest.mark.slow
def test_the_guide_page_button_waits_behind_its_time_then_offers_the_file(monkeypatch):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    real = seed_report.run
    monkeypatch.setattr(seed_report, "run", lambda model, **kw: real(model, **kw, names=["checkerboard"], tiny=True))
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app" / "main.py"), default_timeout=180)
    at.session_state["model"] = MODEL
    at.switch_page("views/guide.py").run()
    assert not at.exception, at.exception
    at.button(key="seed_report").click().run()
    gate = [w.value for w in at.warning]
    assert any(w.startswith("These settings take") for w in gate), gate  # minutes at report size: asked first
    at.button(key="heavy.seed-report.go").click().run()
    assert not at.exception, at.exception
    assert any("Checkerboard" in m.value for m in at.markdown)
    downloads = at.get("download_button")
    assert len(downloads) == 1 and "Download the report" in downloads[0].proto.label


def test_the_first_ctrl_c_cancels_the_report_and_the_second_stops_at_once():
    from engine.cli.seed_report import _Bar

    bar = _Bar(quiet=True)
    assert bar(0, 6, {}) is True
    bar.interrupt(None, None)  # the runner sees False at its next step and writes a PARTIAL report
    assert bar(1, 6, {}) is False
    with pytest.raises(KeyboardInterrupt):
        bar.interrupt(None, None)
