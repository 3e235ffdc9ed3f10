"""report.html: the gallery's thumbnails written and read back, the page's structure, and the page opened in headless
Chromium (every image decoded, no console error, nothing wider than a phone's screen), with screenshots.

The browser is driven over the DevTools protocol with a minimal websocket client written here on the standard
library (handshake, masked text frames sent, unmasked frames read), so the test needs no extra Python package;
``./install.sh test`` installs Debian's ``chromium`` where it is missing. Screenshots of the report are also copied
to ``/tmp/report_screenshot.png`` (desktop) and ``/tmp/report_screenshot_phone.png`` (390 px wide).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from segattack.data.labels import CLASS_COLORS, colorize
from segattack.experiment.outputs import write_thumbnails
from segattack.report import render_html, summarize_rows, write_report
from segattack.report.gallery import GALLERY_LIMIT, THUMB_KINDS, gallery_html, read_gallery
from segattack.report.summary import attack_time, headline
from segattack.rundir import ROW_FIELDS, append_jsonl, figure1_path, output_name, write_json

# -- a minimal DevTools client --------------------------------------------------------------------------------------

_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class _WebSocket:
    """Just enough of RFC 6455 for the DevTools protocol: text messages both ways, pings answered."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        u = urllib.parse.urlsplit(url)
        host, port = u.hostname or "127.0.0.1", u.port or 80
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {u.path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        self.buf = bytearray()
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the browser closed the connection during the websocket handshake")
            self.buf += chunk
        end = self.buf.index(b"\r\n\r\n")
        head = bytes(self.buf[:end]).decode("latin-1")
        del self.buf[: end + 4]
        status, *lines = head.split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        if " 101 " not in status + " " or headers.get("sec-websocket-accept") != accept:
            raise ConnectionError(f"websocket handshake refused: {status}")

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(max(1 << 16, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("the browser closed the connection")
            self.buf += chunk
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        head = bytearray([0x80 | opcode])
        if n < 126:
            head.append(0x80 | n)
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
        self.sock.sendall(bytes(head) + mask + masked)

    def send(self, text: str) -> None:
        self._send_frame(0x1, text.encode("utf-8"))

    def recv(self) -> str:
        message = bytearray()
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(self._read(2), "big")
            elif n == 127:
                n = int.from_bytes(self._read(8), "big")
            mask = self._read(4) if b1 & 0x80 else b""
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:  # pong
                continue
            if opcode == 0x8:
                raise ConnectionError("the browser closed the websocket")
            message += payload
            if b0 & 0x80:
                return message.decode("utf-8")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class DevTools:
    """Commands and events of the DevTools protocol over one browser connection (flat sessions)."""

    def __init__(self, ws: _WebSocket) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, params: Mapping[str, Any] | None = None, session: str | None = None) -> Any:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": dict(params or {})}
        if session is not None:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for n, ev in enumerate(self.events):
                if ev.get("method") == method and ev.get("sessionId") == session:
                    return self.events.pop(n)
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {timeout:.0f} s")
            self.events.append(json.loads(self.ws.recv()))


def find_chromium() -> str | None:
    """Debian's ``chromium`` (``./install.sh test`` installs it), or another Chromium-based browser on the PATH."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    "--disable-extensions", "--no-default-browser-check", "--hide-scrollbars", "--mute-audio",
    "--remote-debugging-port=0",
)  # fmt: skip


@contextlib.contextmanager
def chromium(workdir: Path, binary: str | None = None, timeout: float = 60.0) -> Iterator[DevTools]:
    """Start headless Chromium with a fresh profile under ``workdir`` and connect to its DevTools endpoint (the
    port it chose, read from the "DevTools listening on ws://..." line of its stderr); closed at the end."""
    binary = binary or find_chromium()
    if binary is None:
        raise FileNotFoundError("chromium not found")
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "chromium.log"
    cmd = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={workdir / 'profile'}", "about:blank"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
        )
    dt: DevTools | None = None
    try:
        deadline = time.monotonic() + timeout
        url = None
        while url is None:
            m = re.search(r"DevTools listening on (ws://\S+)", log_path.read_text(errors="replace"))
            if m:
                url = m.group(1)
            elif proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start (exit {proc.poll()}): {log_path.read_text()[-2000:]}")
            else:
                time.sleep(0.05)
        dt = DevTools(_WebSocket(url, timeout=timeout))
        yield dt
    finally:
        if dt is not None:
            with contextlib.suppress(Exception):
                dt.call("Browser.close")
            dt.ws.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the process group this function started
            proc.wait(timeout=10)


@dataclass
class PageCheck:
    """What the browser saw of a page."""

    images: int  # <img> elements
    all_loaded: bool  # every one complete with a natural width > 0
    broken: list[str]  # alt (or the start of src) of those that are not
    errors: list[str]  # console errors, uncaught exceptions, log entries of level error
    scroll_width: int  # the document's width in CSS pixels ...
    viewport_width: int  # ... and the viewport's: wider means the page scrolls sideways
    screenshot: bytes = field(repr=False, default=b"")


_PAGE_STATE = """JSON.stringify({
  images: document.images.length,
  all_loaded: Array.from(document.images).every(i => i.complete && i.naturalWidth > 0),
  broken: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))
                .map(i => i.alt || i.src.slice(0, 40)),
  scroll_width: document.documentElement.scrollWidth,
  viewport_width: window.innerWidth
})"""


def _error_text(ev: Mapping[str, Any]) -> str | None:
    p = ev.get("params", {})
    if ev.get("method") == "Runtime.exceptionThrown":
        d = p.get("exceptionDetails", {})
        return "exception: " + str(d.get("exception", {}).get("description") or d.get("text"))
    if ev.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
        args = [str(a.get("value", a.get("description", ""))) for a in p.get("args", [])]
        return "console.error: " + " ".join(args)
    if ev.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
        e = p["entry"]
        return f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}".strip()
    return None


def check_page(
    dt: DevTools,
    url: str,
    *,
    width: int = 1280,
    height: int = 900,
    mobile: bool = False,
    full_page: bool = True,
    scale: float = 1.0,
) -> PageCheck:
    """Open ``url`` in a new tab of ``width`` x ``height`` CSS pixels (``mobile``: the viewport meta applies;
    ``scale``: device pixels per CSS pixel of the screenshot), wait
    for its load event, read the state of its images, take a PNG screenshot (the whole page with ``full_page``)
    and collect every error the page raised."""
    target = dt.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = dt.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    try:
        for method in ("Page.enable", "Runtime.enable", "Log.enable"):
            dt.call(method, session=session)
        metrics = {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": mobile}
        dt.call("Emulation.setDeviceMetricsOverride", metrics, session=session)
        dt.call("Page.navigate", {"url": url}, session=session)
        dt.wait_event("Page.loadEventFired", session)
        evaluated = dt.call("Runtime.evaluate", {"expression": _PAGE_STATE, "returnByValue": True}, session=session)
        state = json.loads(evaluated["result"]["value"])
        shot: dict[str, Any] = {"format": "png"}
        if full_page:
            size = dt.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
            w, h = max(width, math.ceil(size["width"])), math.ceil(size["height"])
            shot |= {"captureBeyondViewport": True, "clip": {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}}
        png = base64.b64decode(dt.call("Page.captureScreenshot", shot, session=session)["data"])
        time.sleep(0.2)  # let late errors arrive, then collect them behind one more round trip
        dt.call("Runtime.evaluate", {"expression": "1"}, session=session)
        errors = [t for ev in dt.events if ev.get("sessionId") == session and (t := _error_text(ev))]
    finally:
        dt.events = [ev for ev in dt.events if ev.get("sessionId") != session]
        with contextlib.suppress(Exception):
            dt.call("Target.closeTarget", {"targetId": target})
    return PageCheck(
        images=int(state["images"]),
        all_loaded=bool(state["all_loaded"]),
        broken=list(state["broken"]),
        errors=errors,
        scroll_width=int(state["scroll_width"]),
        viewport_width=int(state["viewport_width"]),
        screenshot=png,
    )


# -- a run directory written by hand ---------------------------------------------------------------------------------

SKY, VEG, ROAD, PERSON = 10, 8, 0, 11
EPS = (2, 4, 10)
#: Per image: share hidden at eps 10 (whole image); None: no person in the clean prediction.
HIDDEN_AT_10 = {0: 0.95, 1: 0.40, 2: 1.0, 3: 0.75, 4: None}


def scene(index: int, size: tuple[int, int] = (96, 300)) -> tuple[np.ndarray, np.ndarray]:
    """A street-like (H, W, 3) uint8 image and its (H, W) label map: sky, vegetation, road and a person."""
    h, w = size
    rng = np.random.default_rng(index)
    labels = np.full((h, w), ROAD, np.uint8)
    labels[: h // 3] = SKY
    labels[h // 3 :, : w // 4] = VEG
    if HIDDEN_AT_10[index] is not None:
        left = w // 3 + 20 * index
        labels[h // 4 : 3 * h // 4, left : left + w // 10] = PERSON
    img = colorize(labels).astype(np.float64) + rng.normal(0, 12, (h, w, 3))
    return img.clip(0, 255).astype(np.uint8), labels


def attacked(index: int, labels: np.ndarray) -> np.ndarray:
    """The prediction on the adversarial image: the person's top rows turned to road, in proportion."""
    out = labels.copy()
    rows = np.flatnonzero((labels == PERSON).any(1))
    top = rows[: round((HIDDEN_AT_10[index] or 0.0) * len(rows))]
    part = out[top]
    part[part == PERSON] = ROAD
    out[top] = part
    return out


def hand_rows() -> list[dict[str, Any]]:
    rows = []
    for i, h10 in HIDDEN_AT_10.items():
        for eps in EPS:
            for mode in ("full", "posthoc"):
                row: dict[str, Any] = dict.fromkeys(ROW_FIELDS)
                row.update(image_id=f"val_{i:06d}", index=i, attack="illm", eps=eps, mode=mode, steps=eps + 3)
                if h10 is None:
                    row.update(status="absent", class_pixels=0, time_s=0.0)
                else:
                    fooled = h10 * (eps / 10) ** 0.3 * (1.0 if mode == "full" else 0.6)
                    row.update(fooled=fooled, preserved=0.97 + 0.002 * i, target_hit=0.96, class_pixels=1000 + 7 * i,
                               linf=float(eps), psnr=40.0, time_s=0.5 + 0.25 * (i % 2), status="ok")  # fmt: skip
                rows.append(row)
    return rows


CONFIG = {
    "format": 1,
    "experiment": {
        "goal": "hide", "class_ids": [11], "class_names": ["person"], "eps_levels": list(EPS),
        "attacks": [{"name": "illm", "options": {}}], "passes": {"illm": [3, 5, 13]}, "reference": None,
        "sweeps": {"illm": {"shared": True, "forward": 15, "backward": 15}},
        "modes": ["full", "posthoc"], "images": 5, "figure1_eps": 10, "data": "synthetic:5", "size": [96, 300],
        "model": "zoo:fcn2s-synth-w8-r32", "weights": None, "model_sha256": "b88ed888867c75e3", "num_classes": 19,
    },
    "run": {
        "batch_size": 4, "device": "cpu", "seed": 0, "written": "2026-01-01T00:00:00+0000",
        "versions": {"segattack": "0.1.0", "torch": "2.13.0+cpu", "numpy": "2.4", "python": "3.11.7"},
    },
}  # fmt: skip


def make_run(out: Path, *, thumbs: bool = True, reason: bool = True) -> Path:
    """A hide-goal run directory: config.json, results.jsonl, two Figure 1 files and the gallery's thumbnails."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", CONFIG)
    append_jsonl(out / "results.jsonl", hand_rows())
    for i, h10 in HIDDEN_AT_10.items():
        if h10 is None:
            continue
        img, labels = scene(i)
        noise = np.where(np.arange(img.size).reshape(img.shape) % 3 == 0, 10, -10)
        adv = (img.astype(np.int16) + noise).clip(0, 255).astype(np.uint8)
        pred_adv = attacked(i, labels)
        if thumbs and i != 3:  # image 3 has none: an older run, or one stopped before writing them
            write_thumbnails(out, f"val_{i:06d}", image=img, adv=adv, pred=labels, pred_adv=pred_adv)
        if i < 2:
            arrays: dict[str, Any] = {
                "image_id": np.array(f"val_{i:06d}"), "attack": np.array("illm"), "eps": np.array(10.0),
                "class_ids": np.array([PERSON]), "image": img, "adv": adv, "adv_restricted": img,
                "target": np.where(labels == PERSON, ROAD, labels), "pred": labels, "pred_adv": pred_adv,
                "pred_restricted": labels,
            }  # fmt: skip
            if reason and i == 1:
                arrays["reason"] = np.array("the image with the fewest person pixels hidden at eps 10")
            with open(figure1_path(out, f"val_{i:06d}"), "wb") as fh:
                np.savez_compressed(fh, **arrays)
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = make_run(tmp_path_factory.mktemp("report_html") / "run")
    write_report(out)
    return out


# -- thumbnails and gallery -----------------------------------------------------------------------------------------


def test_write_thumbnails(tmp_path: Path) -> None:
    img, labels = scene(0, size=(100, 600))
    paths = write_thumbnails(tmp_path, "a b", image=img, adv=img, pred=labels, pred_adv=attacked(0, labels))
    folder = tmp_path / "thumbs" / output_name("a b")
    assert output_name("a b") != "a b" and set(paths) == set(THUMB_KINDS)
    assert paths == {k: folder / f"{k}.png" for k in THUMB_KINDS}
    palette = {tuple(c) for c in CLASS_COLORS}
    for kind, path in paths.items():
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size == (256, 43), kind  # 600x100 -> 256 wide, aspect kept
            arr = np.asarray(im.convert("RGB"))
        if kind.startswith("pred"):  # label maps by nearest neighbour: only the classes' own colours
            assert {tuple(c) for c in arr.reshape(-1, 3)} <= palette
            assert "person" in im.text["segattack:classes"]
    assert not list(folder.glob("*.tmp"))  # written atomically
    small = write_thumbnails(tmp_path, "small", image=img[:10, :20], adv=img[:10, :20], pred=labels[:10, :20],
                             pred_adv=labels[:10, :20], max_width=64)  # fmt: skip
    with Image.open(small["pred"]) as im:
        assert im.size == (20, 10)  # never upscaled


def test_write_thumbnails_refuses_wrong_arrays(tmp_path: Path) -> None:
    img, labels = scene(0)
    with pytest.raises(ValueError, match=r"image must be an \(H, W, 3\) uint8"):
        write_thumbnails(tmp_path, "x", image=img.transpose(2, 0, 1), adv=img, pred=labels, pred_adv=labels)
    with pytest.raises(ValueError, match="uint8"):
        write_thumbnails(tmp_path, "x", image=img.astype(float), adv=img, pred=labels, pred_adv=labels)
    with pytest.raises(ValueError, match="pred_adv must be an"):
        write_thumbnails(tmp_path, "x", image=img, adv=img, pred=labels, pred_adv=labels[:5])
    with pytest.raises(ValueError, match="integer class ids"):
        write_thumbnails(tmp_path, "x", image=img, adv=img, pred=labels, pred_adv=labels.astype(float))
    assert not (tmp_path / "thumbs").exists()


def test_read_gallery_pairs_rows_and_sorts_worst_first(tmp_path: Path) -> None:
    out = make_run(tmp_path / "run")
    items = read_gallery(out, hand_rows())
    # image 4 has no person (not attacked), image 3 no thumbnails: both left out; the rest by hidden share
    assert [it.image_id for it in items] == ["val_000001", "val_000000", "val_000002"]
    assert [it.fooled for it in items] == pytest.approx([0.40, 0.95, 1.0])
    assert all(it.eps == 10 and it.attack == "illm" for it in items)
    assert [it.class_pixels for it in items] == [1007, 1000, 1014]
    assert items[0].preserved == pytest.approx(0.972) and items[0].classes[11] == "person"
    assert all(p.is_file() for it in items for p in it.paths.values())
    # other budgets and modes come from the same thumbnails' rows only when asked for
    assert [it.eps for it in read_gallery(out, hand_rows(), eps=2)] == [2, 2, 2]
    assert read_gallery(out, hand_rows(), attack="pgd") == []
    # a truncated thumbnail is left out; a directory without thumbs/ has no gallery
    (out / "thumbs" / "val_000000" / "adv.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert [it.image_id for it in read_gallery(out, hand_rows())] == ["val_000001", "val_000002"]
    assert read_gallery(tmp_path / "nothing", hand_rows()) == []


def test_gallery_html(tmp_path: Path) -> None:
    out = make_run(tmp_path / "run")
    items = read_gallery(out, hand_rows())
    page = gallery_html(items)
    assert page.count('<li class="card">') == 3 and page.count("data:image/png;base64,") == 12
    assert page.index("val_000001") < page.index("val_000000") < page.index("val_000002")  # worst first
    assert "<b>40.0%</b> person pixels hidden" in page and "<b>97.2%</b>" in page and "1,007 person pixels" in page
    assert all(f"<figcaption>{c}</figcaption>" in page for c in THUMB_KINDS.values())
    assert "background:#dc143c" in page  # the legend: person's colour
    few = gallery_html(items, limit=2)
    assert few.count('<li class="card">') == 2 and "The 2 images with the fewest person pixels hidden" in few
    assert gallery_html([]) == "" and GALLERY_LIMIT >= 24


# -- the page -------------------------------------------------------------------------------------------------------


def test_report_page_structure(run_dir: Path) -> None:
    page = (run_dir / "report.html").read_text()
    assert "<meta name='viewport' content='width=device-width, initial-scale=1'>" in page
    assert "<script" not in page.lower() and not re.search(r"""(src|href)=["'](?!data:|#)""", page)
    assert "@import" not in page and "url(" not in page  # no font or stylesheet from elsewhere
    order = ['id="headline"', '<dl class="facts">', 'id="figure2"', 'id="summary"', 'id="figure1"', 'id="gallery"',
             'id="config"']  # fmt: skip
    positions = [page.index(s) for s in order]
    assert positions == sorted(positions)
    head = page[positions[0] : positions[1]]
    # the headline: eps 10, whole image 77.5% hidden (mean of .95, .40, 1.0, .75), restricted 0.6 of it, 4 images
    assert "eps = 10" in head and ">77.5%<" in head and ">46.5%<" in head and ">97.3%<" in head
    assert "<b>4</b> images with person pixels, of 5" in head and "1 without person" in head
    facts = page[positions[1] : positions[2]]
    assert "zoo:fcn2s-synth-w8-r32" in facts and "synthetic:5" in facts and "96×300" in facts
    assert "<b>2.5 s</b> for 4 images" in facts  # 0.5 + 0.75 + 0.5 + 0.75: once per image, not per row
    assert "<b>illm</b> 3 / 5 / 13 at eps 2 / 4 / 10, 15 in all" in facts and "device <b>cpu</b>" in facts
    assert "torch 2.13.0+cpu" in facts
    assert '<div class="scroll"><table>' in page and "77.5 <small>± 23.6</small>" in page
    fig1 = page[positions[4] : positions[5]]
    assert "<figcaption>val_000000</figcaption>" in fig1
    assert "<figcaption>val_000001: the image with the fewest person pixels hidden at eps 10</figcaption>" in fig1
    gallery = page[positions[5] : positions[6]]
    assert gallery.count('<li class="card">') == 3
    assert page.count("data:image/png;base64,") == 1 + 2 + 3 * 4  # Figure 2, two Figure 1, three cards
    assert '"eps_levels"' in page or "&quot;eps_levels&quot;" in page


def test_report_without_thumbnails_or_reasons(tmp_path: Path) -> None:
    out = make_run(tmp_path / "run", thumbs=False, reason=False)
    report = write_report(out)
    page = report.html_path.read_text()
    assert report.gallery == [] and 'id="gallery"' not in page and 'href="#gallery"' not in page
    assert "<figcaption>val_000001</figcaption>" in page


def test_headline_and_time_helpers() -> None:
    summary = summarize_rows(hand_rows(), attacks=["illm"])
    head = headline(summary)
    assert head["eps"] == 10 and head["attack"] == "illm" and list(head["rows"]) == ["full", "posthoc"]
    assert headline(summarize_rows([r for r in hand_rows() if r["eps"] in (2, 4)]))["eps"] == 4
    assert attack_time(hand_rows()) == (pytest.approx(2.5), 4)
    assert headline([]) == {}


def test_untargeted_page() -> None:
    rows = []
    for a, acc in (("pgd", 0.4), ("apgd", 0.2)):
        for i in range(3):
            row: dict[str, Any] = dict.fromkeys(ROW_FIELDS)
            row.update(image_id=f"i{i}", index=i, attack=a, eps=8, mode="full", status="ok", accuracy=acc + 0.01 * i,
                       clean_accuracy=0.9, confusion=[[0, 0, 40], [0, 1, 60]], clean_confusion=[[0, 0, 90],
                       [1, 1, 10]], time_s=1.0, psnr=38.0, linf=8.0)  # fmt: skip
            rows.append(row)
    summary = summarize_rows(rows, attacks=["pgd", "apgd"], num_classes=2)
    config = {"experiment": {"goal": "untargeted", "modes": ["full"], "eps_levels": [8], "reference": "truth"}}
    page = render_html(config, summary, [], None, [], None, ["pgd: eps=8: mIoU 20.0%"], rows=rows)
    assert "Robustness under attack" in page and "worst of all" in page
    head = page[page.index('id="headline"') : page.index('<dl class="facts">')]
    assert "the worst of all attacks, per image" in head and ">21.0%<" in head and "<b>3</b> images" in head
    assert "pgd: eps=8: mIoU 20.0%" in page and 'id="figure2"' not in page


# -- in the browser -------------------------------------------------------------------------------------------------


def _chromium_or_skip() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip("chromium not found (./install.sh test installs Debian's chromium where apt-get and root allow)")
    return binary


def test_report_in_chromium(run_dir: Path, tmp_path: Path) -> None:
    binary = _chromium_or_skip()
    url = (run_dir / "report.html").resolve().as_uri()
    with chromium(tmp_path / "browser", binary) as dt:
        desk = check_page(dt, url, width=1280, height=900)
        phone = check_page(dt, url, width=390, height=844, mobile=True)
    for name, check in (("report_screenshot.png", desk), ("report_screenshot_phone.png", phone)):
        (tmp_path / name).write_bytes(check.screenshot)
        with contextlib.suppress(OSError):
            Path("/tmp", name).write_bytes(check.screenshot)
    for check in (desk, phone):
        assert check.images == 1 + 2 + 3 * 4 and check.all_loaded and check.broken == [], check
        assert check.errors == [], check.errors
        assert check.scroll_width <= check.viewport_width, check  # nothing but the table scrolls sideways
    with Image.open(tmp_path / "report_screenshot.png") as im:
        assert im.size[0] == 1280 and im.size[1] > 2000  # the whole page
    with Image.open(tmp_path / "report_screenshot_phone.png") as im:
        assert im.size[0] == 390 and im.size[1] > im.size[0]


def test_browser_check_catches_broken_images_and_errors(tmp_path: Path) -> None:
    binary = _chromium_or_skip()
    bad = tmp_path / "bad.html"
    bad.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body><p>broken</p>"
        '<img alt="broken one" src="data:image/png;base64,AAAA">'
        "<div style='width:2000px'>too wide</div>"
        "<script>console.error('boom'); undefinedFunction();</script></body></html>"
    )
    with chromium(tmp_path / "browser", binary) as dt:
        check = check_page(dt, bad.as_uri(), width=390, height=844, mobile=True, full_page=False)
    assert check.images == 1 and not check.all_loaded and check.broken == ["broken one"]
    assert any("console.error: boom" in e for e in check.errors), check.errors
    assert any(e.startswith("exception:") and "undefinedFunction" in e for e in check.errors), check.errors
    assert check.scroll_width > check.viewport_width
