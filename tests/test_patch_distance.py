"""Patch position vs heat-map centre (engine.analysis.patch_distance; Yu 2022, Figs. 3–4)."""

import json
import math

import pytest
import torch

from engine.analysis import patch_distance as pd
from engine.cli import main
from engine.heatmaps import grad_cam

HALF_PIXEL_DIAGONAL = math.sqrt(0.5) + 1e-5  # each coordinate is rounded to a whole pixel


def test_ring_placements_lie_at_the_requested_distance_inside_the_image():
    gen = torch.Generator().manual_seed(3)
    centres = torch.rand((20, 2), generator=gen) * 31
    distances, size, shape = [0.0, 2.5, 6.0, 11.0, 40.0, 100.0], 5, (32, 32)
    placed, skipped = pd.ring(centres, distances, 16, size, shape)
    measured = (pd.patch_centre(placed.top, placed.left, size) - centres[placed.image]).norm(dim=-1)
    assert (measured - placed.distance).abs().max() <= HALF_PIXEL_DIAGONAL
    assert bool(((placed.top >= 0) & (placed.left >= 0) & (placed.top + size <= 32) & (placed.left + size <= 32)).all())
    at_zero = placed.distance == 0
    assert torch.bincount(placed.image[at_zero], minlength=20).max() <= 1  # 16 directions, one placement
    assert int(skipped[:, 4:].sum()) == 2 * 20 * 16 and not bool(
        (placed.distance >= 40).any()
    )  # they leave a 32 px image
    keys = set(zip(placed.image.tolist(), placed.distance.tolist(), placed.top.tolist(), placed.left.tolist()))
    assert len(keys) == len(placed)  # no placement counted twice
    assert int(skipped[:, 0].sum()) + int(at_zero.sum()) == 20  # each photo's one d=0 spot: run or skipped


def test_direction_zero_is_to_the_right_and_a_quarter_turn_is_up():
    top, left = pd.top_left(torch.tensor(20.0), torch.tensor(20.0), torch.tensor(10.0), torch.tensor(0.0), 5)
    assert (int(top), int(left)) == (18, 28)
    top, left = pd.top_left(torch.tensor(20.0), torch.tensor(20.0), torch.tensor(10.0), torch.tensor(math.pi / 2), 5)
    assert (int(top), int(left)) == (8, 18)


@pytest.mark.parametrize("pattern", pd.PATTERNS)
def test_the_patch_keeps_its_budget_and_the_image_range(pattern):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((3, 3, 24, 24), generator=gen)
    patch = pd.make_patch(3, 6, 0.4, pattern, seed=1)
    image, top, left = torch.tensor([0, 2, 2, 1]), torch.tensor([0, 18, 5, 9]), torch.tensor([0, 18, 11, 3])
    out = pd.apply_patch(x, patch, image, top, left)
    delta = out - x[image]
    assert float(delta.abs().max()) <= 0.4 + 1e-6 and float(out.min()) >= 0 and float(out.max()) <= 1
    for j in range(4):
        box = torch.zeros((24, 24), dtype=torch.bool)
        box[top[j] : top[j] + 6, left[j] : left[j] + 6] = True
        assert float(delta[j][:, ~box].abs().max()) == 0.0  # nothing changes outside the patch
        expected = (x[image[j]][:, box].view(3, 6, 6) + patch).clamp(0, 1) - x[image[j]][:, box].view(3, 6, 6)
        assert torch.allclose(delta[j][:, box].view(3, 6, 6), expected)


def test_the_same_patch_is_used_at_every_placement():
    x = torch.full((2, 3, 30, 30), 0.5)  # mid-grey: ±0.3 is never clamped, so δ is the patch itself
    patch = pd.make_patch(3, 4, 0.3, "sign", seed=7)
    assert torch.allclose(patch.abs(), torch.full_like(patch, 0.3)) and bool((patch > 0).any() and (patch < 0).any())
    assert torch.equal(patch, pd.make_patch(3, 4, 0.3, "sign", seed=7))
    assert not torch.equal(patch, pd.make_patch(3, 4, 0.3, "sign", seed=8))
    placed, _ = pd.ring(torch.tensor([[14.0, 14.0], [10.0, 20.0]]), [0, 3, 6, 9], 8, 4, (30, 30))
    out = pd.apply_patch(x, patch, placed.image, placed.top, placed.left)
    for j in range(len(placed)):
        t, left = int(placed.top[j]), int(placed.left[j])
        assert torch.allclose(out[j, :, t : t + 4, left : left + 4] - 0.5, patch, atol=1e-6)


def test_the_control_is_uniform_over_the_positions_that_fit():
    centres = torch.tensor([[5.0, 5.0], [20.0, 12.0]])
    a = pd.random_positions(torch.tensor([12_000, 12_000]), centres, 5, (24, 24), seed=0)
    b = pd.random_positions(torch.tensor([12_000, 12_000]), centres, 5, (24, 24), seed=1)
    assert not torch.equal(a.top, b.top)
    assert int(a.top.min()) == 0 and int(a.top.max()) == 19 and int(a.left.max()) == 19  # every position can come up
    counts = torch.bincount(a.top * 20 + a.left, minlength=400).float()
    assert float(counts.min()) > 0.5 * 60 and float(counts.max()) < 1.6 * 60  # 24,000 draws over 400 spots: ~60 each
    measured = (pd.patch_centre(a.top, a.left, 5) - centres[a.image]).norm(dim=-1)
    assert torch.allclose(measured, a.distance)


def test_peak_centroid_and_empty_maps():
    maps = torch.zeros((4, 9, 9))
    maps[0, 2, 6] = 1.0
    maps[1, 4, 3:5] = 1.0  # a flat top two pixels wide: its middle
    maps[2, 1, 1] = maps[2, 7, 7] = 1.0  # two equal spots: the centroid lies between them, on cold pixels
    assert pd.heat_centres(maps, "peak")[0].tolist() == [2.0, 6.0]
    assert pd.heat_centres(maps, "peak")[1].tolist() == [4.0, 3.5]
    assert pd.heat_centres(maps, "centroid")[2].tolist() == [4.0, 4.0]
    assert bool(torch.isnan(pd.heat_centres(maps, "peak")[3]).all())
    with pytest.raises(ValueError, match="unknown centre"):
        pd.heat_centres(maps, "middle")


def _direct(model, x, y, size, amplitude, distances, directions, seed):
    """The experiment written out the slow way: one photo, one placement, one forward at a time."""
    patch = pd.make_patch(x.shape[1], size, amplitude, "sign", seed)
    h, w = x.shape[-2:]
    rows = {d: [] for d in distances}
    for i in range(x.shape[0]):
        with torch.no_grad():
            if int(model(x[i : i + 1]).argmax()) != int(y[i]):
                continue
        heat = grad_cam(model, x[i : i + 1], target=int(y[i]))[0]
        if float(heat.max()) <= 0:
            continue
        top_value = float(heat.max())
        spots = (heat >= top_value - 1e-6).nonzero().float()
        cy, cx = spots.mean(0).tolist()
        for d in distances:
            seen = set()
            for k in range(directions):
                angle = 2 * math.pi * k / directions
                sin, cos = (0.0 if abs(v) < 1e-12 else v for v in (math.sin(angle), math.cos(angle)))
                t = round(cy - d * sin - (size - 1) / 2)  # Python rounds halves to even, as torch does
                left = round(cx + d * cos - (size - 1) / 2)
                if (t, left) in seen or t < 0 or left < 0 or t + size > h or left + size > w:
                    seen.add((t, left))
                    continue
                seen.add((t, left))
                xp = x[i : i + 1].clone()
                xp[0, :, t : t + size, left : left + size] = (xp[0, :, t : t + size, left : left + size] + patch).clamp(
                    0, 1
                )
                with torch.no_grad():
                    p = torch.softmax(model(xp), 1)[0]
                rest = torch.cat([p[: int(y[i])], p[int(y[i]) + 1 :]])
                with torch.no_grad():
                    clean = float(torch.softmax(model(x[i : i + 1]), 1)[0, y[i]])
                rows[d].append((1 - float(p[y[i]]), float(p[y[i]] - rest.max()), i, clean - float(p[y[i]])))
    return rows


def test_the_curve_equals_a_direct_recomputation(digits):
    model, x, y = digits
    x, y = x[:24], y[:24]  # 8×8 digits: a 2 px patch, distances up to 3 px
    distances, directions = [0.0, 1.0, 2.0, 3.0], 8
    result = pd.patch_distance(
        model, x, y, size=2, amplitude=0.6, distances=distances, directions=directions, seed=2, batch_size=7
    )
    direct = _direct(model, x, y, 2, 0.6, distances, directions, seed=2)
    assert not result.stopped_early
    for row in result.curve:
        got = direct[row["distance"]]
        assert row["n"] == len(got) and row["n"] > 0
        wrong, margin = torch.tensor([g[0] for g in got]), torch.tensor([g[1] for g in got])
        assert row["wrong_mean"] == pytest.approx(float(wrong.mean()), abs=1e-5)
        assert row["wrong_std"] == pytest.approx(float(wrong.std(unbiased=False)), abs=1e-5)
        assert row["margin_mean"] == pytest.approx(float(margin.mean()), abs=1e-5)
        assert row["success"] == pytest.approx(float((margin < 0).float().mean()))
    # The control: the same patch at its recorded random positions, one forward each.
    ctrl = result.random
    assert result.control["n"] == len(ctrl) == sum(r["n"] for r in result.curve)
    wrong, random_drops = [], {}
    for j in range(len(ctrl)):
        i = int(result.counted[ctrl.image[j]])
        t, left = int(ctrl.top[j]), int(ctrl.left[j])
        xp = x[i : i + 1].clone()
        xp[0, :, t : t + 2, left : left + 2] = (xp[0, :, t : t + 2, left : left + 2] + result.patch).clamp(0, 1)
        with torch.no_grad():
            p, clean = torch.softmax(model(xp), 1)[0, y[i]], torch.softmax(model(x[i : i + 1]), 1)[0, y[i]]
        wrong.append(1 - float(p))
        random_drops.setdefault(i, []).append(float(clean - p))
    assert result.control["wrong_mean"] == pytest.approx(sum(wrong) / len(wrong), abs=1e-5)
    # Photo by photo: its mean drop at a distance minus its mean drop at its random positions.
    for row in result.curve:
        per_photo = {}
        for _, _, i, drop in direct[row["distance"]]:
            per_photo.setdefault(i, []).append(drop)
        excess = torch.tensor(
            [sum(v) / len(v) - sum(random_drops[i]) / len(random_drops[i]) for i, v in per_photo.items()]
        )
        assert row["photos"] == len(per_photo)
        assert row["over_random_mean"] == pytest.approx(float(excess.mean()), abs=1e-5)
        if len(excess) > 1:
            assert row["over_random_se"] == pytest.approx(float(excess.std() / len(excess) ** 0.5), abs=1e-5)
        assert row["photos_above"] == pytest.approx(float((excess > 0).float().mean()))


def test_photos_without_a_centre_are_left_out_and_said(digits):
    model, x, y = digits
    x, labels = x[:8], y[:8].clone()
    labels[:2] = (labels[:2] + 1) % 10  # the model now gets these two wrong
    result = pd.patch_distance(model, x, labels, size=3, amplitude=0.5, distances=[0, 2], directions=4)
    flat = [float(grad_cam(model, x[i : i + 1], target=int(y[i])).max()) <= 0 for i in range(8)]
    expected = ["misclassified before the patch"] * 2 + [
        "all-zero heat map: no centre" if f else None for f in flat[2:]
    ]
    assert [p["reason"] for p in result.photos] == expected
    assert result.counted.tolist() == [i for i, e in enumerate(expected) if e is None]
    assert any(flat[2:]) and not all(flat[2:])  # both kinds of photo are in the test


def test_a_stop_keeps_only_whole_photos(digits):
    model, x, y = digits
    calls = []

    def stop_after_two(step, total, state):
        calls.append(step)
        return len(calls) < 2

    result = pd.patch_distance(
        model,
        x[:40],
        y[:40],
        size=2,
        amplitude=0.5,
        distances=[0, 1, 2],
        directions=8,
        batch_size=16,
        callback=stop_after_two,
    )
    assert result.stopped_early and len(calls) == 2
    counted = result.settings["photos_counted"]
    assert 1 <= counted and len(result.ring) + len(result.random) <= 32  # two batches of 16
    assert set(result.ring.image.tolist()) | set(result.random.image.tolist()) <= set(range(counted))
    per_photo = torch.bincount(result.ring.image, minlength=counted)
    assert torch.equal(per_photo, torch.bincount(result.random.image, minlength=counted))  # control: same count


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"size": 9}, "patch size must be between 1 and 8"),
        ({"amplitude": 0.0}, r"amplitude must be in \(0, 1\]"),
        ({"amplitude": 1.5}, r"amplitude must be in \(0, 1\]"),
        ({"distances": [0, -2]}, "distances must be finite and ≥ 0"),
        ({"directions": 0}, "directions must be at least 1"),
        ({"pattern": "stripes"}, "unknown patch pattern"),
    ],
)
def test_bad_settings_are_refused_in_words(digits, kwargs, message):
    model, x, y = digits
    settings = {"size": 3, "amplitude": 0.5, "distances": [0, 2], "directions": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        pd.patch_distance(model, x[:2], y[:2], **settings)


def test_defaults_follow_the_image_side(lite0):
    own = pd.defaults(lite0)
    assert own["size"] == 32 and own["distances"] == [0, 16, 32, 48, 64, 80, 96, 112]


def test_cli_json(capsys):
    code = main(
        [
            "patch-distance",
            "--model",
            "fmnist-lenet-0",
            "--n",
            "6",
            "--size",
            "5",
            "--amplitude",
            "0.8",
            "--distances",
            "0",
            "4",
            "8",
            "--directions",
            "4",
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    record = json.loads(out)
    assert [r["distance"] for r in record["curve"]] == [0.0, 4.0, 8.0]
    assert record["settings"]["size"] == 5 and record["settings"]["amplitude"] == 0.8
    assert len(record["photos"]) == 6 and record["photos"][0]["image"] == "fmnist:0"
    assert record["control"]["n"] == sum(r["n"] for r in record["curve"])
    assert all(0 <= r["success"] <= 1 for r in record["curve"] if r["n"])


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--size", "40"], "patch size must be between 1 and 28"),
        (["--amplitude", "0"], "amplitude must be in (0, 1]"),
        (["--amplitude", "2"], "amplitude must be in (0, 1]"),
        (["--distances", "0", "-3"], "distances must be finite and ≥ 0"),
    ],
)
def test_cli_bad_inputs_are_one_line_errors(capsys, flags, message):
    code = main(["patch-distance", "--model", "fmnist-lenet-0", "--n", "2", *flags])
    _, err = capsys.readouterr()
    assert code == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
