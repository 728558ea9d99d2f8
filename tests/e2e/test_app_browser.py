"""The operator page in a real headless browser (Debian chromium + chromedriver, selenium):
upload photos, read the verdicts, move the threshold, watch the counts; bad files are listed."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anomaly_vit.deploy import Inferencer
from anomaly_vit.ui.counts import confusion_at
from tests.helpers import compose
from tests.helpers.browser import free_port, headless_chromium, wait_for
from tests.helpers.deploy import demo_dir

pytestmark = pytest.mark.slow


def _demo_photos(run_dir: Path, label: str, n: int) -> list[Path]:
    return sorted((demo_dir(run_dir) / "left" / label).glob("*.png"))[:n]


def _photo(path: Path, brightness: float, size=(96, 64), seed=0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(255 * brightness, 20, (size[1], size[0], 3)), 0, 255)
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return path


def _png_header_only(path: Path, width: int, height: int) -> Path:
    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def app(token_bundle):
    from anomaly_vit.cli.app import launch

    cfg = compose("app", [f"bundle={token_bundle}", f"port={free_port()}"])
    blocks, page, url = launch(cfg, block=False)
    yield page, url
    blocks.close()


@pytest.fixture(scope="module")
def browser():
    driver = headless_chromium()
    yield driver
    driver.quit()


def _open(browser, url):
    from selenium.webdriver.common.by import By

    browser.get(url)
    return wait_for(
        lambda: browser.find_element(By.CSS_SELECTOR, "#photos input[type=file]"),
        what="the page's upload field",
    )


def _verdicts(browser, n: int) -> dict[str, tuple[str, float | None]]:
    from selenium.webdriver.common.by import By

    def read():
        items = browser.find_elements(By.CSS_SELECTOR, "#verdicts li.verdict")
        if len(items) != n:
            return None
        return {
            e.get_attribute("data-photo"): (
                e.get_attribute("data-verdict"),
                None
                if e.get_attribute("data-score") is None
                else float(e.get_attribute("data-score")),
            )
            for e in items
        }

    return wait_for(read, what=f"{n} verdicts on the page")


def _counts(browser) -> dict[str, int]:
    from selenium.webdriver.common.by import By

    return {
        key: int(browser.find_element(By.ID, f"count-{key}").get_attribute("data-count"))
        for key in ("tp", "fp", "tn", "fn")
    }


def _type(browser, css: str, text: str, enter: bool = False) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = browser.find_element(By.CSS_SELECTOR, css)
    field.clear()
    field.send_keys(text + (Keys.ENTER if enter else ""))


def test_upload_read_verdicts_move_threshold_counts_follow(
    app, token_bundle, smoke_run_tokens, browser, tmp_path
):
    from selenium.webdriver.common.by import By

    page, url = app
    assert url.startswith("http://127.0.0.1:")  # localhost unless told (host=)
    # two photos of the smoke model's demo set, one good, one cracked, at their own sizes
    good, crack = _demo_photos(smoke_run_tokens, "good", 1)[0], _demo_photos(smoke_run_tokens, "crack", 1)[0]  # fmt: skip
    photos = [tmp_path / "cracked_part.png", tmp_path / "good_part.png"]
    Image.open(crack).resize((256, 256), Image.BICUBIC).save(photos[0])
    Image.open(good).resize((320, 240), Image.BICUBIC).save(photos[1])
    # a labelled set as a manifest: every other demo photo, defect = any defect kind
    labelled = tmp_path / "labelled.csv"
    truth_paths = [
        *_demo_photos(smoke_run_tokens, "good", 8),
        *_demo_photos(smoke_run_tokens, "crack", 4),
        *_demo_photos(smoke_run_tokens, "stain", 4),
    ]
    set_truth = [p.parent.name != "good" for p in truth_paths]
    labelled.write_text(
        "path,label\n"
        + "".join(
            f"{p},{'defect' if t else 'good'}\n"
            for p, t in zip(truth_paths, set_truth, strict=True)
        )  # fmt: skip
    )

    # offline: the inferencer's own scores and the page's starting threshold
    offline = Inferencer(token_bundle)
    threshold = offline.threshold
    assert page.threshold == threshold
    scores = {p.name: pred.score for p, pred in zip(photos, offline.predict(photos), strict=True)}
    set_scores = [p.score for p in offline.predict(truth_paths)]

    _open(browser, url).send_keys("\n".join(str(p) for p in photos))
    shown = _verdicts(browser, 2)
    assert shown == {
        name: ("defect" if s >= threshold else "good", pytest.approx(s, abs=1e-6))
        for name, s in scores.items()
    }

    assert browser.find_element(By.CSS_SELECTOR, "#outlined img").get_attribute("src")
    assert "cracked_part.png" in browser.find_element(By.ID, "photo-verdict").text
    # a click on the table's row of the other photo shows it in the viewer
    _view(browser, "good_part.png")
    _type(browser, "#labelled textarea", str(labelled))
    browser.find_element(By.ID, "score-labelled").click()
    start = confusion_at(set_scores, set_truth, threshold)
    wait_for(lambda: _counts(browser) == _as_dict(start), what="the counts at the start")

    # a threshold between two scores of the set that changes the counts, and a verdict
    candidates = sorted(set_scores + list(scores.values()))
    moved = next(
        t
        for t in (round((a + b) / 2, 4) for a, b in zip(candidates, candidates[1:], strict=False))
        if _as_dict(confusion_at(set_scores, set_truth, t)) != _as_dict(start)
        and any((s >= t) != (s >= threshold) for s in scores.values())
    )
    _type(browser, "#threshold input[type=number]", str(moved), enter=True)
    expected = _as_dict(confusion_at(set_scores, set_truth, moved))
    wait_for(lambda: _counts(browser) == expected, what=f"the counts at threshold {moved}")
    assert expected != _as_dict(start)
    verdicts_moved = {k: v for k, (v, _) in _verdicts(browser, 2).items()}
    assert verdicts_moved == {n: "defect" if s >= moved else "good" for n, s in scores.items()}

    _view(browser, "cracked_part.png")
    if os.environ.get("AVIT_APP_SCREENSHOT"):  # docs/images/app.png (docs/app.md says how)
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1400, height)
        browser.save_screenshot(os.environ["AVIT_APP_SCREENSHOT"])
        browser.set_window_size(1400, 1800)

    # offline: every resource the page loaded came from this server
    hosts = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => new URL(e.name).host)"
    )
    assert set(hosts) <= {url.split("/")[2]}, hosts


def test_bad_files_get_a_message_and_the_server_goes_on(app, browser, tmp_path):
    from selenium.webdriver.common.by import By

    _, url = app
    (tmp_path / "notes.png").write_text("a text file with an image's name")
    (tmp_path / "empty.png").write_bytes(b"")
    huge = _png_header_only(tmp_path / "huge.png", 40000, 30000)
    upload = _open(browser, url)
    browser.find_element(By.ID, "inspect").click()
    wait_for(
        lambda: "Nothing to inspect" in browser.find_element(By.ID, "messages").text,
        what="the empty-upload message",
    )
    upload.send_keys("\n".join(str(tmp_path / n) for n in ("notes.png", "empty.png", huge.name)))
    shown = _verdicts(browser, 3)
    assert {name: verdict for name, (verdict, _) in shown.items()} == {
        "notes.png": "unreadable",
        "empty.png": "unreadable",
        "huge.png": "unreadable",
    }
    text = browser.find_element(By.ID, "messages").text
    assert "'notes.png': not a recognised image" in text
    assert "'empty.png': file is empty (0 bytes)" in text
    assert "'huge.png': too large to decode safely" in text
    # the server still answers
    good = _photo(tmp_path / "fine.png", 0.3)
    _open(browser, url).send_keys(str(good))
    assert _verdicts(browser, 1)["fine.png"][0] in {"good", "defect"}


def _view(browser, name: str) -> None:
    """Click the table's row of `name`; wait until the viewer shows it."""
    from selenium.webdriver.common.by import By

    cell = wait_for(
        lambda: next(
            e
            for e in browser.find_elements(By.CSS_SELECTOR, "#table [role=gridcell]")
            if e.text.strip() == name
        ),
        what=f"the table's {name} cell",
    )
    cell.click()
    wait_for(
        lambda: name in browser.find_element(By.ID, "photo-verdict").text,
        what=f"the viewer on {name}",
    )


def _as_dict(c) -> dict[str, int]:
    return {"tp": c.tp, "fp": c.fp, "tn": c.tn, "fn": c.fn}
