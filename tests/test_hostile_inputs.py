"""Hostile uploads: every file of the generated corpus gives an image or a clear message —
in the engine, the CLI (exit code 2, one line) and the app (an error box, state kept) — never a crash."""

import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))
from apptest_helpers import uploader  # noqa: E402
from make_hostile import CORPUS, bomb_png, write_corpus  # noqa: E402

from engine import images  # noqa: E402
from engine.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_engine_decodes_or_explains(corpus, name):
    verdict, expected = CORPUS[name]
    if verdict == "ok":
        img = images.decode(corpus[name])
        assert img.size == expected and img.mode in ("RGB", "L")
        assert images.decode(corpus[name].read_bytes()).size == expected  # bytes (uploads) as paths
    else:
        with pytest.raises(ValueError, match=expected):
            images.decode(corpus[name])


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_cli_exit_code_and_one_line(corpus, name, capsys):
    code = main(["attack", "--model", "fmnist-lenet-0", "--image", str(corpus[name]), "--attack", "fgsm", "--json"])
    out, err = capsys.readouterr()
    if CORPUS[name][0] == "ok":
        assert code == 0, err
    else:
        assert code == 2
        assert len(err.strip().splitlines()) == 1 and CORPUS[name][1] in err and "Traceback" not in err


@pytest.mark.slow
def test_bomb_is_refused_before_any_pixel_is_allocated(tmp_path):
    """Decoding the bomb would need ~30 GB: under a 2 GB address-space limit, only the header check can pass."""
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png())
    script = (
        "import resource, sys\n"
        "from engine import images\n"
        # Whatever is mapped now (torch maps a lot) plus 2 GB: far below the bomb's ~30 GB.
        "size = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmSize')) * 1024\n"
        "resource.setrlimit(resource.RLIMIT_AS, (size + (2 << 30), size + (2 << 30)))\n"
        "try:\n    images.decode(sys.argv[1])\nexcept ValueError as e:\n    print('refused:', e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "refused: the image declares too many pixels" in done.stdout, done.stderr[-500:]


@pytest.mark.slow
def test_app_shows_an_error_box_for_each_bad_file_and_keeps_its_state(corpus):
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=300)
    at.run()
    at.radio(key="image_source").set_value("Upload").run()
    shown = at.subheader[0].value
    for name in sorted(CORPUS):
        # The uploader only offers image extensions; a hostile file renamed to .png must still be refused.
        sent = name if name.endswith((".png", ".jpg", ".gif")) else name + ".png"
        uploader(at).upload(sent, corpus[name].read_bytes(), "application/octet-stream").run()
        assert not at.exception, (name, at.exception)
        if CORPUS[name][0] == "ok":
            assert not at.error, (name, [e.value for e in at.error])
            assert at.session_state["selection"].image_label == sent
        else:
            messages = " ".join(e.value for e in at.error)
            assert "cannot be used" in messages and CORPUS[name][1] in messages, (name, messages)
            assert at.session_state["selection"].image_key == "chelsea"  # back on the gallery photo
            assert at.subheader[0].value == shown  # its attack result is still on screen
