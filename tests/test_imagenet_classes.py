"""The committed ImageNet class-name list: complete, in the models' order, and in step with the wnid list."""

import pytest

from engine import datasets
from engine.datasets import imagenet


def test_the_file_lists_1000_distinct_names_one_a_line():
    lines = imagenet.CLASSES_FILE.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1000
    assert len(set(lines)) == 1000
    assert all(line and line == line.strip() for line in lines)
    assert imagenet.class_names() == tuple(lines)


@pytest.mark.parametrize(
    "index, name",
    [
        (0, "tench"),
        (1, "goldfish"),
        (207, "golden retriever"),
        (285, "Egyptian cat"),
        (404, "airliner"),
        (555, "fire engine"),
        (999, "toilet tissue"),
    ],
)
def test_known_classes_sit_at_their_model_index(index, name):
    assert imagenet.class_names()[index] == name


def test_names_and_wnids_describe_the_same_classes():
    wnids = datasets.imagenet_wnids()
    assert len(wnids) == len(imagenet.class_names())
    # Both lists are in the models' order: wnid 0 is the tench, wnid 207 the golden retriever.
    assert (wnids[0], wnids[207], wnids[999]) == ("n01440764", "n02099601", "n15075141")


def test_the_file_still_matches_torchvision_weight_metadata():
    weights = pytest.importorskip("torchvision.models").ResNet18_Weights.IMAGENET1K_V1
    assert imagenet.class_names() == tuple(weights.meta["categories"])


def test_a_truncated_file_is_refused(tmp_path, monkeypatch):
    short = tmp_path / "classes.txt"
    short.write_text("\n".join(imagenet.class_names()[:999]) + "\n", encoding="utf-8")
    monkeypatch.setattr(imagenet, "CLASSES_FILE", short)
    imagenet.class_names.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="1000 distinct"):
            imagenet.class_names()
    finally:
        monkeypatch.undo()
        imagenet.class_names.cache_clear()
