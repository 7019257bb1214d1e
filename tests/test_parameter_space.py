"""Every attack's declared parameter space, property-based: inside the ranges that
`attacks.available()` declares → a valid result within its budget; outside → a ValueError that
names the parameter. A pre-hook on the model proves that NaN or ±inf never reaches it."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import attacks, targets

# Iteration counts are drawn small so that each example runs in milliseconds; the rest of each range is drawn whole.
CAPS = {"steps": 3, "n_queries": 20, "binary_search_steps": 2, "pairs": 8, "candidates": 64}
ATTACKS = sorted(attacks.ATTACKS)


def inside(spec: dict, model) -> st.SearchStrategy:
    """A strategy for one declared parameter, inside its range."""
    name, low, high = spec["name"], spec["low"], spec["high"]
    if spec["type"] == "bool":
        return st.booleans()
    if spec["type"] == "str":
        return st.sampled_from(spec["choices"])
    if name == "layer":
        return st.one_of(st.none(), st.integers(0, len(model.layers()) - 1))
    if spec["type"] == "int":
        low = int(low) + (1 if spec["low_open"] else 0)
        return st.integers(low, min(int(high), CAPS.get(name, int(high))))
    values = st.floats(float(low), float(high), exclude_min=spec["low_open"], allow_nan=False)
    return st.one_of(st.none(), values) if spec["default"] is None else values


def outside(spec: dict) -> list:
    """Values a form or a URL could send that the parameter must refuse."""
    bad = [float("nan"), float("inf"), "abc"]
    if spec["type"] == "str":
        return [*bad, 3, True, ""]
    if spec["type"] != "bool":
        bad += [True]
        if spec["low"] is not None:
            bad.append(spec["low"] - (1 if spec["type"] == "int" else 1e-3) if not spec["low_open"] else spec["low"])
        if spec["high"] is not None:
            bad.append(spec["high"] + (1 if spec["type"] == "int" else 1e-3))
        if spec["type"] == "int":
            bad.append(1.5)
    else:
        bad = ["maybe", 2.5]
    return bad


class FiniteInputs:
    """Forward pre-hook asserting the model only ever sees finite pixels (removed on exit)."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def __enter__(self):
        def check(_module, args):
            self.calls += 1
            assert torch.isfinite(args[0]).all(), "a non-finite input reached the model"

        self.handle = self.model.register_forward_pre_hook(check)
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def _call(name, model, x, params):
    spec = attacks.get(name)
    extra = {}
    if spec.needs_target_images:
        extra["target_images"] = x.flip(0)
    elif not spec.untargeted:
        extra["target"] = targets.runner_up(model, x)
    return attacks.run(name, model, x, seed=0, **extra, **params)


@pytest.mark.parametrize("name", ATTACKS)
def test_inside_the_declared_ranges_results_are_valid(digits, name):
    model, x, _ = digits
    x = x[:2]
    described = {d["name"]: d for d in attacks.available(model.domain)}[name]
    strategy = st.fixed_dictionaries({p["name"]: inside(p, model) for p in described["params"]})

    @settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(strategy)
    def check(params):
        params = {k: v for k, v in params.items() if v is not None}
        if name == "jsma" and params.get("theta") == 0:
            with pytest.raises(ValueError, match="theta"):
                _call(name, model, x, params)
            return
        with FiniteInputs(model) as guard:
            result = _call(name, model, x, params)
        assert guard.calls > 0
        assert torch.isfinite(result.x_adv).all()
        assert float(result.x_adv.min()) >= 0.0 and float(result.x_adv.max()) <= 1.0
        if described["norm"] == "linf":
            eps = params.get("eps", 0.03)
            assert float((result.x_adv - x).abs().max()) <= eps + 1e-6
        assert result.x_adv.shape == x.shape and result.success.shape == (2,)

    check()


@pytest.mark.parametrize("name", ATTACKS)
def test_outside_the_declared_ranges_the_parameter_is_named(digits, name):
    model, x, _ = digits
    described = {d["name"]: d for d in attacks.available(model.domain)}[name]
    cases = 0
    with FiniteInputs(model):  # runner-up targets are computed before validation fails: still finite inputs
        for p in described["params"]:
            for value in outside(p):
                with pytest.raises(ValueError, match=p["name"]):
                    _call(name, model, x[:1], {p["name"]: value})
                cases += 1
    assert cases >= 3 * len(described["params"])
    with pytest.raises(ValueError, match="no parameter 'bogus'"):
        _call(name, model, x[:1], {"bogus": 1})


def test_nan_and_inf_pixels_are_refused_before_the_model(digits):
    model, x, _ = digits
    for poison in (float("nan"), float("inf"), -float("inf")):
        bad = x[:1].clone()
        bad[0, 0, 0, 0] = poison
        with FiniteInputs(model) as guard:
            with pytest.raises(ValueError, match="NaN or infinite"):
                attacks.run("pgd", model, bad)
        assert guard.calls == 0
