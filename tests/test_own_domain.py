"""A domain made from what a researcher brings: a model's classes, shape and statistics at load time,
their labelled images as its evaluation split, target-image bank and pictures, their masks or GrabCut."""

import ast
import subprocess
import sys
from pathlib import Path

import own_world
import pytest
import torch

from engine import attacks, datasets, domains
from engine.analysis.target_images import choose_target_images, evaluation_split

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def white():
    return own_world.classifier("white")


@pytest.fixture(scope="module")
def images():
    return datasets.open_zip(own_world.zip_bytes(), name="images.zip")


@pytest.fixture(scope="module")
def world(white, images):
    return datasets.as_domain(domains.of(white), images, "zip:test", white)


def test_a_model_of_any_domain_name_gets_a_record_at_load_time(white):
    record = domains.of(white)
    assert record.name == white.domain == "shapes" and record.custom
    assert record.class_names == own_world.META["class_names"]
    assert record.input_size == (3, 32, 32) and record.mean == pytest.approx(own_world.META["mean"])
    assert domains.get("shapes") is record
    assert not record.has_images  # until the user's images are attached


def test_defaults_are_derived_from_the_input():
    small_colour = domains.derived_defaults((3, 32, 32))
    small_grey = domains.derived_defaults((1, 28, 28))
    photos = domains.derived_defaults((3, 224, 224))
    assert small_colour[0]["eps"] == pytest.approx(0.03) and "CIFAR" in small_colour[3]
    assert small_grey[0] == domains.get(domains.FASHION_MNIST_NAME).attack_defaults
    assert photos[2] == domains.get(domains.IMAGENET_NAME).defaults
    assert own_world.classifier().attack_defaults == {"eps": pytest.approx(0.03)}  # what attacks read


def test_models_with_the_same_classes_share_a_domain_and_others_do_not(white):
    black = own_world.classifier("black")
    assert black.domain == white.domain and black.class_names == white.class_names
    other = own_world.classifier("white", name="other-classes")
    other.class_names = [f"thing {i}" for i in range(10)]
    record = domains.adopt(other, "shapes")
    assert record.name == "shapes (2)" and other.domain == "shapes (2)"
    assert other.domain != white.domain
    unnamed = own_world.classifier("white", name="unnamed")
    unnamed.class_names = list(other.class_names)
    assert domains.adopt(unnamed).name == "shapes (2)"  # an unnamed model joins the record with its classes


def test_a_built_in_domain_name_needs_its_classes():
    model = own_world.classifier("white", name="not-imagenet")
    with pytest.raises(ValueError, match="1000 classes"):
        domains.adopt(model, domains.IMAGENET_NAME)


def test_the_users_images_are_the_split_the_bank_and_the_pictures(white, world):
    assert world.has_images and world.count() == 40 and world.indexed
    (x, y), (bank_x, bank_y) = world.split(white, 10)
    assert x.shape == (10, 3, 32, 32)
    assert sorted(y.tolist()) == list(range(10))  # classes interleaved: ten images span the ten classes
    assert len(set(bank_y.tolist())) == 10  # AA's bank spans the classes whatever n is
    with torch.no_grad():
        assert bool((white(bank_x).argmax(1) == bank_y).all())  # only images the model gets right
    key = world.image_keys()[3]
    assert key == "zip:test#3" and world.parse_key(key) == 3
    assert torch.equal(world.load(key, white), x[3:4]) and world.label(key) == int(y[3])
    assert world.parse_key("zip:other#3") is None and "numbered 0–39" in world.unknown_key("zip:test#99")


def test_engine_analyses_see_the_attached_images(white, world):
    model = own_world.classifier("white", name="attached")
    with pytest.raises(domains.NeedsImages, match="labelled images of its 10 classes"):
        evaluation_split(model, 4)
    model.domain_record = datasets.as_domain(
        domains.of(model), datasets.open_zip(own_world.zip_bytes()), "zip:t", model
    )
    (x, y), _ = evaluation_split(model, 4)
    assert x.shape[0] == 4
    target, goal = choose_target_images(model, x[:2], 1, seed=0)
    assert goal.shape == (2, 3, 32, 32) and bool((target != y[:2]).all())


def test_masks_are_the_users_own_else_grabcut(white, world):
    keys = world.image_keys()[:4] + world.image_keys()[10:14]  # first and second images of four classes
    x = torch.cat([world.load(k, white) for k in keys])
    stored = [world.stored_mask(k, white) is not None for k in keys]
    assert any(stored) and not all(stored)  # the fixture has masks for some images only
    masks = world.object_masks(white, x, keys)
    assert masks.shape == (8, 1, 32, 32) and masks.dtype == torch.bool
    for i, k in enumerate(keys):
        if stored[i]:
            assert torch.equal(masks[i], world.stored_mask(k, white))
        assert 0 < masks[i].float().mean() < 0.9  # an object, not the whole picture


def test_an_attack_uses_the_domains_budget(white, world):
    x = world.load(world.image_keys()[0], white)
    result = attacks.run("pgd", white, x, steps=5)
    assert float((result.x_adv - x).abs().max()) <= 0.03 + 1e-6


def test_masks_folder_is_not_a_class(images):
    assert "masks" not in {str(label) for label in images.labels}
    assert len(images.masks) == 10


def test_the_domain_record_imports_nothing_heavy():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, engine.domains; "
            "print(sorted(m for m in sys.modules if m.startswith(('engine', 'torch', 'numpy'))))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert eval(out) == ["engine", "engine.domains"]


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Every engine module a file imports, at its top or inside functions (`from package import module`
    names the module, not the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names}
            found |= (subs & modules) or {node.module}
            if subs - modules:
                found.add(node.module)
    return {m for m in found if m.startswith("engine")}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_attacks_never_import_domains_and_engine_has_no_import_cycle():
    files = {_module(p): p for p in (ROOT / "engine").rglob("*.py")}
    graph = {m: {d for d in _imports(p, set(files)) if d in files and d != m} for m, p in files.items()}
    for m in graph:
        if m.startswith("engine.attacks"):
            assert not any(d.startswith(("engine.domains", "engine.analysis", "engine.data")) for d in graph[m]), m
    # Depth-first search for a back edge, lazy imports included.
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for d in graph[m]:
            if state.get(d) == 1:
                raise AssertionError(" → ".join([*path[path.index(d) :], d]))
            if d not in state:
                visit(d, [*path, d])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
