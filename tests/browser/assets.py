"""Headless Chromium with the network off: CDN requests answered from npm copies.

Folium pages load Leaflet, its plugins, jQuery and Bootstrap from CDNs. The tests
install exactly those versions from the npm registry (``tests/browser/package.json``,
``npm ci`` in ``tests/system_deps.sh``) and answer every CDN request from
``tests/browser/node_modules``; map tiles get a blank tile; every other request is
aborted, so a page that needs anything else fails visibly.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
CHROMIUM = Path(os.environ.get("ESTATES_CHROMIUM", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
]

#: (URL pattern, npm package, path inside the package). ``{path}`` is the rest of the URL.
CDN_RULES: list[tuple[re.Pattern[str], str, str]] = [
    # jsDelivr and unpkg serve npm packages by name@version/path
    (
        re.compile(
            r"^https://cdn\.jsdelivr\.net/npm/(?P<pkg>(@[^/]+/)?[^/@]+)@(?P<ver>[^/]+)/(?P<path>.+)$"
        ),
        "",
        "",
    ),
    (
        re.compile(r"^https://unpkg\.com/(?P<pkg>(@[^/]+/)?[^/@]+)@(?P<ver>[^/]+)/(?P<path>.+)$"),
        "",
        "",
    ),
    (
        re.compile(
            r"^https://cdnjs\.cloudflare\.com/ajax/libs/leaflet\.markercluster/(?P<ver>[^/]+)/(?P<path>.+)$"
        ),
        "leaflet.markercluster",
        "dist/{path}",
    ),
    (
        re.compile(
            r"^https://cdnjs\.cloudflare\.com/ajax/libs/Leaflet\.awesome-markers/(?P<ver>[^/]+)/(?P<path>.+\.js)$"
        ),
        "drmonty-leaflet-awesome-markers",
        "js/{path}",
    ),
    (
        re.compile(
            r"^https://cdnjs\.cloudflare\.com/ajax/libs/Leaflet\.awesome-markers/(?P<ver>[^/]+)/(?P<path>.+)$"
        ),
        "drmonty-leaflet-awesome-markers",
        "css/{path}",
    ),
    (
        re.compile(r"^https://code\.jquery\.com/jquery-(?P<ver>[\d.]+)(?P<min>\.min)?\.js$"),
        "jquery",
        "dist/jquery{min}.js",
    ),
]
TILE_HOSTS = re.compile(
    r"(^|\.)(tile\.openstreetmap\.org|basemaps\.cartocdn\.com|tile\.opentopomap\.org)$"
)
CONTENT_TYPES = {
    ".js": "application/javascript",
    ".css": "text/css",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".woff2": "font/woff2",
    ".woff": "font/woff",
    ".ttf": "font/ttf",
}


def _blank_png(size: int = 256, rgb: tuple[int, int, int] = (236, 236, 232)) -> bytes:
    """A plain light tile, so an offline map still has a calm background."""
    row = b"\x00" + bytes(rgb) * size
    raw = zlib.compress(row * size, 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


BLANK_TILE = _blank_png()


def _installed_version(package: str) -> str | None:
    manifest = NODE_MODULES / package / "package.json"
    if not manifest.exists():
        return None
    return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])


def local_asset(url: str) -> Path | None:
    """The npm file that answers a CDN ``url``, or None when no rule matches.

    A matching rule whose package is missing or of another version raises: the page
    asked for something the test setup did not install.
    """
    clean = url.split("?", 1)[0].split("#", 1)[0]
    for pattern, package, template in CDN_RULES:
        match = pattern.match(clean)
        if not match:
            continue
        groups = match.groupdict()
        pkg = package or groups["pkg"]
        rel = (
            template.format(path=groups.get("path", ""), min=groups.get("min") or "")
            if template
            else groups["path"]
        )
        installed = _installed_version(pkg)
        if installed is None:
            raise FileNotFoundError(
                f"{url} needs npm package {pkg}, not in {NODE_MODULES}: run `npm ci` in {HERE}"
            )
        wanted = groups.get("ver")
        if wanted and wanted != installed:
            raise FileNotFoundError(
                f"{url} needs {pkg}@{wanted}, {NODE_MODULES} has {installed}: "
                f"pin {pkg} to {wanted} in tests/browser/package.json"
            )
        path = NODE_MODULES / pkg / rel
        if not path.is_file():
            raise FileNotFoundError(f"{url}: {path} does not exist in the npm package")
        return path
    return None


def browser_unavailable_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found (apt-get install chromium, or run tests/system_deps.sh)"
    if not (NODE_MODULES / "leaflet" / "package.json").exists():
        return f"npm assets missing: run `npm ci` in {HERE} (tests/system_deps.sh does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright for Python is not installed (pip install playwright)"
    return None


def skip_or_fail(reason: str) -> None:
    message = f"BROWSER TESTS SKIPPED: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI must run them)")
    pytest.skip(message)


@dataclass
class PageLog:
    """What a page did: JS errors, console errors, requests served and refused."""

    errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    served: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return (
            [f"pageerror: {e}" for e in self.errors]
            + [f"console: {e}" for e in self.console_errors]
            + [f"refused request: {u}" for u in self.refused]
        )


def make_router(pages: set[str], log: PageLog) -> Callable[[Any], None]:
    """A Playwright route handler: our map files, npm copies of CDN files, blank tiles, else abort."""

    def handle(route: Any) -> None:
        url = route.request.url
        parts = urlsplit(url)
        if url in pages:
            log.served.append(url)
            route.continue_()
            return
        if TILE_HOSTS.search(parts.hostname or ""):
            route.fulfill(status=200, body=BLANK_TILE, content_type="image/png")
            return
        try:
            local = local_asset(url)
        except FileNotFoundError as error:
            log.refused.append(f"{url} ({error})")
            route.abort()
            return
        if local is None:
            log.refused.append(url)
            route.abort()
            return
        log.served.append(url)
        route.fulfill(
            status=200,
            path=str(local),
            content_type=CONTENT_TYPES.get(local.suffix, "application/octet-stream"),
            headers={"access-control-allow-origin": "*"},
        )

    return handle


@contextmanager
def chromium_browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright; no Playwright browser download."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def open_map(
    browser: Any, html: Path, *, width: int = 1280, height: int = 860
) -> Iterator[tuple[Any, PageLog]]:
    """Open a saved map in a fresh offline context; yields (page, log)."""
    log = PageLog()
    context = browser.new_context(
        viewport={"width": width, "height": height}, service_workers="block"
    )
    context.route("**/*", make_router({html.resolve().as_uri()}, log))
    page = context.new_page()
    page.bring_to_front()  # a page Chromium thinks is hidden gets no animation frames
    page.on("pageerror", lambda error: log.errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            log.console_errors.append(message.text) if message.type == "error" else None
        ),
    )
    try:
        yield page, log
    finally:
        context.close()


def goto_map(page: Any, html: Path, *, timeout_ms: int = 60_000) -> float:
    """Open the saved file as a user would (``file://``), wait until the map is ready.

    Returns the milliseconds from navigation start to the moment the last site batch
    was clustered (``estatesMap.readyAt``), by the page's own clock.
    """
    page.goto(html.resolve().as_uri(), wait_until="load", timeout=timeout_ms)
    page.wait_for_function(
        "window.estatesMap && window.estatesMap.ready === true", timeout=timeout_ms
    )
    return float(page.evaluate("window.estatesMap.readyAt"))
