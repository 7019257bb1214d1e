"""One flag vocabulary across `python -m engine`'s subcommands, defaults from the domain record, and the renamed
flags that still work for one release."""

import argparse
import json

import pytest

from engine import domains
from engine.cli import build_parser, main

FMNIST = domains.get("fashion-mnist")
IMAGENET = domains.get("imagenet")
RENAMED = {"--source", "--white", "--sources", "--tests", "--single", "--judge", "--count", "--eps-values"}


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    return build_parser()._subparsers._group_actions[0].choices


def _visible(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {flag: a for a in parser._actions if a.help != argparse.SUPPRESS for flag in a.option_strings}


def test_each_flag_means_one_thing_in_every_subcommand():
    for name, parser in _subcommands().items():
        flags = _visible(parser)
        assert not RENAMED & set(flags), (name, RENAMED & set(flags))
        if "--target" in flags:  # a target class, never models
            assert name == "attack" and flags["--target"].nargs is None, name
        if "--images" in flags:  # image names or files, never a count
            assert flags["--images"].nargs == "+" and flags["--images"].type is None, name
        if "--n" in flags:
            assert flags["--n"].type is int, name
        for many in ("--models", "--black"):
            if many in flags:
                assert flags[many].nargs == "+", (name, many)
        if "--model" in flags:
            assert flags["--model"].nargs is None, name
        if "--copies" in flags:
            assert flags["--copies"].type is int and flags["--copies"].default is None, name


def test_renamed_flags_still_work_and_warn_only_on_stderr(capsys):
    assert main(["noise-classes", "--models", "fmnist-lenet-0", "--n", "16", "--json"]) == 0
    new = capsys.readouterr()
    assert main(["noise-classes", "--models", "fmnist-lenet-0", "--count", "16", "--json"]) == 0
    old = capsys.readouterr()
    assert json.loads(old.out) == json.loads(new.out)
    assert "--count is deprecated, use --n" in old.err and "deprecated" not in new.err


def test_transfer_takes_black_box_models_with_black_not_target(capsys):
    assert main(["transfer", "--model", "fmnist-lenet-0", "--target", "fmnist-lenet-1", "--json"]) == 2
    assert capsys.readouterr().out == ""
    assert main(["transfer", "--black", "fmnist-lenet-1", "--json"]) == 2
    assert "--model" in capsys.readouterr().err


@pytest.fixture
def captured(monkeypatch):
    """What the analyses are called with, without running them."""
    from engine.analysis import checkerboard, recognisable, transfer

    calls = {}

    def keep(name, result):
        def fake(*args, **kwargs):
            calls[name] = (args, kwargs)
            return result

        return fake

    monkeypatch.setattr(recognisable, "noise_classes", keep("noise", []))
    monkeypatch.setattr(checkerboard, "checkerboard", keep("checkerboard", []))
    monkeypatch.setattr(transfer, "sweep", keep("transfer", []))
    return calls


@pytest.mark.parametrize("model, domain", [("fmnist-lenet-0", FMNIST), ("efficientnet-lite0", IMAGENET)])
def test_counts_and_copies_default_to_the_models_domain(capsys, captured, model, domain):
    assert main(["checkerboard", "--model", model, "--json"]) == 0
    assert captured["checkerboard"][1]["copies"] == domain.defaults["checkerboard_copies"]
    assert main(["noise-classes", "--models", model, "--json"]) == 0
    assert captured["noise"][1]["count"] == domain.defaults["noise_count"]
    assert [m.name for m in captured["noise"][0][0]] == [model]


def test_model_lists_default_to_the_domains_sources_and_judges(capsys, captured):
    assert main(["noise-classes", "--domain", "imagenet", "--json"]) == 0
    assert [m.name for m in captured["noise"][0][0]] == [*IMAGENET.sources, *IMAGENET.judges]


def test_transfer_settings_default_to_the_domain(capsys, captured):
    own = FMNIST.defaults["transfer"]
    base = ["transfer", "--model", "fmnist-lenet-0", "--black", "fmnist-lenet-1", "--n", "2", "--json"]
    assert main(base) == 0
    kwargs = captured["transfer"][1]
    assert kwargs["steps"] == own["steps"] and kwargs["eps_values"] == [own["eps"][len(own["eps"]) // 2]]
    assert json.loads(capsys.readouterr().out)["black"] == ["fmnist-lenet-1"]
    assert main([*base, "--sweep", "eps"]) == 0
    assert captured["transfer"][1]["eps_values"] == [0.0, *own["eps"]]
