"""Shared fixtures: the test world, its prepared dataset and its tiny-CLIP feature store (built once per session)."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gmaps-restaurant-reviews"


@pytest.fixture
def one_thread():
    """Run a test on one torch thread: tiny tensors only fight over the shared cores with more."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def world_dir(tmp_path_factory) -> Path:
    """The small test world (seed 0): filter_all_t.json, photos/, world.json."""
    from showcase.data.world import generate_world

    return generate_world(tmp_path_factory.mktemp("world"), seed=0, size="small")


@pytest.fixture(scope="session")
def dataset_dir(world_dir, tmp_path_factory) -> Path:
    """The world prepared by `showcase prepare` (its own train/val/test split by user)."""
    from showcase.cli import main

    out = tmp_path_factory.mktemp("dataset")
    assert main(["prepare", "--input", str(world_dir / "filter_all_t.json"), "--photos", str(world_dir / "photos"),
                 "--output", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def store_dir(dataset_dir, tmp_path_factory) -> Path:
    """Tiny-CLIP (`showcase-tiny`, seeded random weights) features of every photo and text of the dataset."""
    from showcase.cli import main

    out = tmp_path_factory.mktemp("store")
    assert main(["features", "--dataset", str(dataset_dir), "--model", "showcase-tiny", "--output", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    """`showcase demo --quick`: the whole pipeline end to end, as `make demo` runs it (one epoch per model)."""
    from showcase.cli import main

    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--quick", "--output", str(out), "--showcases", "3"]) == 0
    return out


# --- headless Chromium (Debian's chromium + chromium-driver; `make test` installs them) ---------------------------
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("headless Chromium not installed: apt-get install -y chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed: pip install selenium")
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="annotate-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def user_error(capsys):
    """`user_error(argv, pattern)`: `showcase.cli.main(argv)` exits 2 with one stderr line matching `pattern`."""
    import re

    from showcase.cli import main

    def run(argv: list[str], pattern: str) -> str:
        capsys.readouterr()
        code = main(argv)
        err = capsys.readouterr().err.strip()
        assert code == 2, err
        assert "Traceback" not in err and len(err.splitlines()) == 1, err
        assert re.search(pattern, err), err
        return err
    return run
