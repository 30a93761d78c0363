"""Drive Label Studio's labeling page in a real browser and measure what it draws.

Playwright for Python drives Debian's ``chromium`` (``apt-get install chromium``; never
``playwright install``, which downloads a browser build). :class:`LabelStudioBrowser` logs in
to a :class:`~prelabel.testing.harness.labelstudio.LabelStudioServer`, opens a task's labeling page,
waits until the image (or text, or video) is drawn and the drawing has stopped changing, and
screenshots the media's area. The pixel helpers compare a task with a prediction against the
same media without one: what differs is what Label Studio drew for the prediction.

Example::

    with LabelStudioBrowser(ls, artifacts=artifact_dir("regions")) as browser:
        plain = browser.open_task(project, bare_task).image()
        drawn = browser.open_task(project, predicted_task).image()
        x1, y1, x2, y2 = bounding_box(changed(plain.pixels, drawn.pixels))

Screenshots of failures go to :func:`artifact_dir` (``$PRELABEL_ARTIFACTS/browser/...``, default
``./test-artifacts/browser/...``), where CI can publish them.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np

    from prelabel.testing.harness.labelstudio import LabelStudioServer

__all__ = [
    "CHROMIUM_ARGS",
    "CHROMIUM_ENV",
    "INSTALL_HINT",
    "LabelStudioBrowser",
    "MediaShot",
    "TextShot",
    "artifact_dir",
    "bounding_box",
    "changed",
    "find_chromium",
    "overlap_and_outside",
    "require_browser",
]

#: Environment variable naming the Chromium executable (default: ``chromium`` on PATH).
CHROMIUM_ENV = "PRELABEL_CHROMIUM"
INSTALL_HINT = (
    "needs Debian's chromium and playwright: apt-get install chromium fonts-wqy-microhei; pip install playwright"
)
#: No GPU, no sandbox (root in CI), and no calls home: the browser only talks to loopback.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--force-device-scale-factor=1",
]


def find_chromium() -> Path | None:
    """``$PRELABEL_CHROMIUM``, else ``chromium`` (or ``chromium-browser``) on PATH, else None."""
    override = os.environ.get(CHROMIUM_ENV)
    if override:
        return Path(override)
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return Path(found)
    return None


def require_browser() -> None:
    """Skip the calling test unless playwright and a Chromium are installed, saying how to
    install what is missing."""
    import pytest

    pytest.importorskip("playwright", reason="pip install playwright (and apt-get install chromium)")
    if find_chromium() is None:
        pytest.skip(INSTALL_HINT)


def artifact_dir(*parts: str, fresh: bool = False) -> Path:
    """Where screenshots go: ``$PRELABEL_ARTIFACTS/browser/<parts>``, default
    ``./test-artifacts/browser/<parts>`` (relative to the working directory). ``fresh`` removes
    the screenshots an earlier run left there."""
    root = Path(os.environ.get("PRELABEL_ARTIFACTS") or "test-artifacts")
    path = root / "browser" / Path(*[re.sub(r"[^\w.-]+", "_", p) for p in parts])
    path.mkdir(parents=True, exist_ok=True)
    if fresh:
        for old in path.glob("*.png"):
            old.unlink()
    return path


def changed(before: np.ndarray, after: np.ndarray, threshold: int = 40, speckle: int = 1) -> np.ndarray:
    """Boolean (H, W) mask of the pixels whose colour moved by more than ``threshold`` (sum of
    the absolute RGB differences) between two screenshots of the same area.

    Edges of the media itself can differ by a pixel between two page loads (sub-pixel layout,
    resampling): a morphological opening of ``speckle`` pixels drops changes thinner than
    ``2 * speckle + 1`` pixels and keeps whatever Label Studio filled or drew thicker."""
    import numpy as np

    if before.shape != after.shape:
        raise ValueError(f"screenshots differ in size: {before.shape} vs {after.shape}")
    diff = np.abs(before[..., :3].astype(np.int16) - after[..., :3].astype(np.int16)).sum(axis=-1)
    mask = diff > threshold
    for _ in range(speckle):
        mask = _dilate(~_dilate(~mask))  # erosion
    for _ in range(speckle):
        mask = _dilate(mask)
    return mask


def overlap_and_outside(drawn: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """How well a drawing matches a mask: the share of ``expected`` that is drawn, and the
    share of ``drawn`` that lies outside ``expected`` (both boolean, of the media's size)."""
    overlap = (drawn & expected).sum() / max(1, expected.sum())
    outside = (drawn & ~expected).sum() / max(1, drawn.sum())
    return float(overlap), float(outside)


def _dilate(mask: np.ndarray) -> np.ndarray:
    """3x3 binary dilation (numpy only)."""
    import numpy as np

    padded = np.pad(mask, 1, constant_values=False)
    out = np.zeros_like(mask)
    h, w = mask.shape
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy : dy + h, dx : dx + w]
    return out


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2) of the True pixels, x2/y2 exclusive; AssertionError when none is."""
    import numpy as np

    ys, xs = np.nonzero(mask)
    assert len(xs), "nothing was drawn: the two screenshots are the same"
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@dataclass
class MediaShot:
    """A screenshot of the visible media area, and how to map it back to the media's pixels.

    Label Studio may lay the image out larger than the visible stage (fitted, then cropped by
    its container): ``origin`` is where the image's top-left corner is in the screenshot,
    ``displayed`` the size it is laid out at."""

    pixels: np.ndarray  # (H, W, 3) uint8, screen pixels
    natural_width: int
    natural_height: int
    origin: tuple[float, float] = (0.0, 0.0)
    displayed: tuple[float, float] | None = None
    path: Path | None = None

    @property
    def scale_x(self) -> float:
        """Screen pixels per media pixel, horizontally."""
        width = self.displayed[0] if self.displayed else self.pixels.shape[1]
        return width / self.natural_width

    @property
    def scale_y(self) -> float:
        height = self.displayed[1] if self.displayed else self.pixels.shape[0]
        return height / self.natural_height

    def to_media(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """A screen box (x1, y1, x2, y2) in the media's natural pixels."""
        x1, y1, x2, y2 = box
        ox, oy = self.origin
        return (x1 - ox) / self.scale_x, (y1 - oy) / self.scale_y, (x2 - ox) / self.scale_x, (y2 - oy) / self.scale_y

    def to_screen(self, x: float, y: float) -> tuple[int, int]:
        """A media pixel's position in this screenshot."""
        return round(self.origin[0] + x * self.scale_x), round(self.origin[1] + y * self.scale_y)

    def media_mask(self, screen_mask: np.ndarray) -> np.ndarray:
        """A screen mask sampled at the centre of every media pixel: (natural H, W) booleans
        (False where the media pixel is outside the screenshot)."""
        import numpy as np

        ys = np.floor(self.origin[1] + (np.arange(self.natural_height) + 0.5) * self.scale_y).astype(int)
        xs = np.floor(self.origin[0] + (np.arange(self.natural_width) + 0.5) * self.scale_x).astype(int)
        inside_y = (ys >= 0) & (ys < screen_mask.shape[0])
        inside_x = (xs >= 0) & (xs < screen_mask.shape[1])
        out = screen_mask[np.ix_(np.clip(ys, 0, screen_mask.shape[0] - 1), np.clip(xs, 0, screen_mask.shape[1] - 1))]
        return out & inside_y[:, None] & inside_x[None, :]


@dataclass
class TextShot:
    """A screenshot of a Text object; ``span_box`` (x1, y1, x2, y2) is where the characters
    asked for are laid out in it (measured in the DOM, independently of any highlight)."""

    pixels: np.ndarray
    span_box: tuple[float, float, float, float] | None = None


# Code-point offsets (Python's, Label Studio's) -> a DOM Range over the text nodes -> its box,
# relative to the element. JS strings count UTF-16 units: an emoji is 2 of them.
_CHARACTER_BOX_JS = """(el, [start, end]) => {
  const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  let cp = 0, started = false, ended = false;
  while (walker.nextNode()) {
    const node = walker.currentNode, chars = Array.from(node.data);
    let unit = 0;
    for (let i = 0; i <= chars.length; i++) {
      if (!started && cp + i === start && i < chars.length) { range.setStart(node, unit); started = true; }
      if (started && !ended && cp + i === end) { range.setEnd(node, unit); ended = true; }
      if (i < chars.length) unit += chars[i].length;
    }
    cp += chars.length;
  }
  const r = range.getBoundingClientRect(), b = el.getBoundingClientRect();
  return [r.left - b.left, r.top - b.top, r.right - b.left, r.bottom - b.top];
}"""


# The number the video player's frame counter ("N of TOTAL") shows, or null.
_FRAME_COUNTER_JS = """total => {
  const el = document.querySelector('.lsf-frames-control');
  const m = el && (el.innerText || '').replace(/\\s+/g, ' ').trim().match(new RegExp('^(\\\\d+) of ' + total + '$'));
  return m ? parseInt(m[1]) : null;
}"""

#: The image of an Image object on the labeling page.
IMAGE_SELECTOR = ".lsf-main-view img"
#: The Konva stage drawn over it: the image as displayed, with the regions.
STAGE_SELECTOR = ".lsf-main-view .konvajs-content"


class LabelStudioBrowser:
    """A logged-in Chromium on a Label Studio server (a context manager).

    Args:
        ls: the running server.
        artifacts: folder for screenshots (see :func:`artifact_dir`); every :meth:`save`
            writes there, and :meth:`open_task` keeps the last page so a failing test can
            :meth:`save` it.
        viewport: browser window size; the image view scales the media to fit it.
        executable: Chromium; default :func:`find_chromium`.
    """

    def __init__(
        self,
        ls: LabelStudioServer,
        artifacts: Path,
        viewport: tuple[int, int] = (1400, 1000),
        executable: Path | None = None,
    ) -> None:
        self.ls = ls
        self.artifacts = Path(artifacts)
        self.viewport = viewport
        self.executable = executable or find_chromium()
        self._playwright: Any = None
        self._browser: Any = None
        self._profile: Path | None = None
        self.page: Any = None
        #: console errors the page logged (kept for failure reports)
        self.console_errors: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LabelStudioBrowser:
        import tempfile

        from playwright.sync_api import sync_playwright

        if self.executable is None or not Path(self.executable).is_file():
            raise RuntimeError(f"no Chromium executable ({self.executable}): {INSTALL_HINT}")
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self._profile = Path(tempfile.mkdtemp(prefix="prelabel-chromium-"))
        self._playwright = sync_playwright().start()
        width, height = self.viewport
        # a persistent context on a fresh --user-data-dir: no state from earlier runs
        self._browser = self._playwright.chromium.launch_persistent_context(
            str(self._profile),
            executable_path=str(self.executable),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height},
            device_scale_factor=1,
        )
        self.page = self._browser.pages[0] if self._browser.pages else self._browser.new_page()
        self.page.on("console", lambda msg: self.console_errors.append(msg.text) if msg.type == "error" else None)
        self.page.set_default_timeout(90_000)
        self.login()
        return self

    def close(self) -> None:
        try:
            if self._browser is not None:
                self._browser.close()
        finally:
            if self._playwright is not None:
                self._playwright.stop()
            self._browser = self._playwright = self.page = None
            if self._profile is not None:
                shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> LabelStudioBrowser:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and self.page is not None:
            self.save("failure")
        self.close()

    # -- navigation --------------------------------------------------------------------------
    def login(self) -> None:
        page = self.page
        page.goto(f"{self.ls.url}/user/login/")
        page.fill("input[name=email]", self.ls.username)
        page.fill("input[name=password]", self.ls.password)
        page.click("button[type=submit]")
        page.wait_for_url(lambda url: "/user/login" not in url)

    def open_task(self, project_id: int, task_id: int) -> LabelStudioBrowser:
        """Open the task in the Data Manager's labeling view and wait until its media is drawn."""
        self.page.goto(f"{self.ls.url}/projects/{project_id}/data?task={task_id}")
        self.page.wait_for_selector(".lsf-main-view, [class*=main-view]", state="visible")
        return self

    def wait_image(self) -> Any:
        """A locator of the task's <img> once it has loaded and the drawing over it has settled
        (Label Studio re-renders the image view while a task loads: locators, not handles)."""
        img = self.page.locator(IMAGE_SELECTOR).first
        img.wait_for(state="visible")
        self.page.wait_for_function(
            f"() => {{ const i = document.querySelector({IMAGE_SELECTOR!r}); "
            "return i && i.complete && i.naturalWidth; }"
        )
        return img

    def _settle(self, locator: Any, timeout: float = 30.0) -> None:
        """Wait until two screenshots of ``locator``, a quarter second apart, are the same
        (Konva draws regions some frames after the image; the text view adds highlights)."""
        deadline = time.monotonic() + timeout
        last = self._clip_shot(locator)
        while time.monotonic() < deadline:
            self.page.wait_for_timeout(250)  # one step of a readiness poll, not a fixed wait
            shot = self._clip_shot(locator)
            if shot == last:
                return
            last = shot

    def _clip(self, locator: Any) -> dict[str, int]:
        # whole screen pixels, so two shots of the same layout have the same size; the view may
        # re-render while a task loads (bounding_box is None while the element is replaced)
        for _ in range(20):
            locator.wait_for(state="visible")
            box = locator.bounding_box()
            if box is not None:
                return {k: round(box[k]) for k in ("x", "y", "width", "height")}
        raise AssertionError(f"{locator} never settled on the page")

    def _clip_shot(self, locator: Any) -> bytes:
        return self.page.screenshot(clip=self._clip(locator), animations="disabled")

    def image(self, name: str | None = None) -> MediaShot:
        """Screenshot of the image area (regions drawn over it included), in screen pixels."""
        import numpy as np
        from PIL import Image

        img = self.wait_image()
        natural = img.evaluate("i => [i.naturalWidth, i.naturalHeight]")
        # the Konva stage is the image as displayed (fitted to the view); the <img> element
        # itself is laid out larger and cropped by its container
        stage = self.page.locator(STAGE_SELECTOR).first
        self._settle(stage)
        clip = self._clip(stage)
        png = self.page.screenshot(clip=clip, animations="disabled")
        rect = img.bounding_box()  # transforms (zoom, pan) included
        pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        path = None
        if name:
            path = self.artifacts / f"{name}.png"
            path.write_bytes(png)
        origin = (rect["x"] - clip["x"], rect["y"] - clip["y"])
        return MediaShot(
            pixels,
            int(natural[0]),
            int(natural[1]),
            origin=origin,
            displayed=(rect["width"], rect["height"]),
            path=path,
        )

    def video(self, name: str | None = None) -> MediaShot:
        """Screenshot of the video's current frame (regions drawn over it included).

        Label Studio keeps the <video> off screen and paints the frame, centred, into a canvas
        under its Konva stage: the frame's place in the screenshot is where it differs from
        the stage's background (the corner pixel)."""
        import numpy as np
        from PIL import Image

        self.page.wait_for_function(
            "() => { const v = document.querySelector('video'); return v && v.readyState >= 2 && v.videoWidth > 0; }"
        )
        natural = self.page.locator("video").first.evaluate("v => [v.videoWidth, v.videoHeight]")
        stage = self.page.locator(".konvajs-content").first
        self._settle(stage)
        png = self._clip_shot(stage)
        pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        x1, y1, x2, y2 = bounding_box(np.abs(pixels.astype(int) - pixels[0, 0].astype(int)).sum(axis=-1) > 30)
        path = None
        if name:
            path = self.artifacts / f"{name}.png"
            path.write_bytes(png)
        return MediaShot(
            pixels, int(natural[0]), int(natural[1]), origin=(x1, y1), displayed=(x2 - x1, y2 - y1), path=path
        )

    def step_to_frame(self, frame: int, frames: int) -> None:
        """Go to ``frame`` (from 1) as a user does: click the player's frame counter
        (``.lsf-frames-control``, "N of FRAMES"), type the frame number, press Enter; wait
        until the counter shows it."""
        self.page.wait_for_function(f"total => ({_FRAME_COUNTER_JS})(total) !== null", arg=frames)
        if self.page.evaluate(_FRAME_COUNTER_JS, frames) == frame:
            return
        self.page.locator(".lsf-frames-control").first.click()
        field = self.page.locator(".lsf-frames-control input").first
        field.fill(str(frame))
        field.press("Enter")
        self.page.wait_for_function(f"total => ({_FRAME_COUNTER_JS})(total) === {int(frame)}", arg=frames)

    def smart_keypoint_click(self, shot: MediaShot, x: float, y: float, label: str, nth: int = 0) -> dict:
        """What an annotator does for a smart click: the bottom bar's Auto-Annotation toggle,
        the smart keypoint tool (from the Auto-Detect list), the label (the ``nth`` one with
        that text, for a label several controls share), one click at image pixel ``x, y``
        (placed by ``shot``, a screenshot of the open task). Returns the body Label Studio
        answered the UI's ``/interactive-annotating`` request with."""
        page = self.page
        page.get_by_text("Auto-Annotation").first.click()
        page.locator("button.lsf-tool_smart:not([aria-label])").first.hover()  # "Auto-Detect": opens the list
        page.locator(".lsf-toolbar__smart button[aria-label=key-point-tool]").first.click()
        page.locator("button.lsf-tool_smart.lsf-tool_active").first.wait_for()
        page.locator(".lsf-label", has_text=label).nth(nth).click()
        sx, sy = shot.to_screen(x, y)
        stage = page.locator(".lsf-main-view .konvajs-content").first.bounding_box()
        with page.expect_response(lambda r: "/interactive-annotating" in r.url, timeout=120_000) as answered:
            page.mouse.click(stage["x"] + sx, stage["y"] + sy)
        return answered.value.json()

    @contextlib.contextmanager
    def keep_on_failure(self, name: str) -> Iterator[None]:
        """Save a full-page screenshot ``<name>-failure.png`` if the block raises."""
        try:
            yield
        except BaseException:
            self.save(f"{name}-failure")
            raise

    def text(self, start: int | None = None, end: int | None = None, name: str | None = None) -> TextShot:
        """Screenshot of the task's Text; with ``start``/``end`` (Python code-point offsets,
        as Label Studio stores spans) also the box of those characters in the screenshot."""
        import numpy as np
        from PIL import Image

        element = self.page.locator(".lsf-htx-richtext").first
        element.wait_for(state="visible")
        self._settle(element)
        box = element.bounding_box()
        clip = self._clip(element)
        png = self.page.screenshot(clip=clip, animations="disabled")
        if name:
            (self.artifacts / f"{name}.png").write_bytes(png)
        span_box = None
        if start is not None and end is not None:
            rect = element.evaluate(_CHARACTER_BOX_JS, [start, end])
            span_box = (
                rect[0] + box["x"] - clip["x"],
                rect[1] + box["y"] - clip["y"],
                rect[2] + box["x"] - clip["x"],
                rect[3] + box["y"] - clip["y"],
            )
        return TextShot(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")), span_box)

    def save(self, name: str) -> Path:
        """Full-page screenshot into the artifacts folder."""
        path = self.artifacts / (re.sub(r"[^\w.-]+", "_", name) + ".png")
        try:
            self.page.screenshot(path=str(path), full_page=True)
        except Exception:
            pass
        return path
