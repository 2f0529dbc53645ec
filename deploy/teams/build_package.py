#!/usr/bin/env python3
"""Build the Microsoft Teams app package (the zip you upload / sideload) for scim-help.

    .venv/bin/python deploy/teams/build_package.py                       # app id from MicrosoftAppId / .env
    .venv/bin/python deploy/teams/build_package.py --app-id <GUID> --out dist/scim-help-teams.zip

The zip holds `manifest.json` (this folder's template with `${{BOT_ID}}` and the other placeholders
filled in) and the two icons Teams requires: `color.png` (192x192, full colour) and `outline.png`
(32x32, white on transparent). The icons are drawn by this script (`--icons` redraws them) so the repo
needs no image tools. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys
import zipfile
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.json"
COLOR = HERE / "color.png"
OUTLINE = HERE / "outline.png"
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
PLACEHOLDER = re.compile(r"\$\{\{([A-Z_]+)\}\}")

DEFAULTS = {
    "APP_VERSION": "1.0.0",
    "DEVELOPER_NAME": "IT Operations",
    "WEBSITE_URL": "https://support.catonetworks.com/",
    "PRIVACY_URL": "https://support.catonetworks.com/",
    "TERMS_URL": "https://support.catonetworks.com/",
}


# ---- icons ---------------------------------------------------------------------------------------------


def _png(width: int, height: int, rgba: bytes) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + rgba[y * width * 4 : (y + 1) * width * 4] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def _seg_dist(px: float, py: float, ax: float, ay: float, bx: float, by: float) -> float:
    dx, dy = bx - ax, by - ay
    t = max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    cx, cy = ax + t * dx, ay + t * dy
    return ((px - cx) ** 2 + (py - cy) ** 2) ** 0.5


def _coverage(x: float, y: float) -> bool:
    """The mark in unit coordinates (0..1): a ring with a check mark — "provisioning, verified"."""
    r = ((x - 0.5) ** 2 + (y - 0.5) ** 2) ** 0.5
    if abs(r - 0.36) < 0.045:
        return True
    w = 0.05
    return _seg_dist(x, y, 0.33, 0.52, 0.45, 0.64) < w or _seg_dist(x, y, 0.45, 0.64, 0.68, 0.38) < w


def draw_icon(size: int, background: tuple[int, int, int] | None) -> bytes:
    ss = 4  # supersampling for smooth edges
    out = bytearray()
    for py in range(size):
        for px in range(size):
            hits = sum(
                _coverage((px + (i + 0.5) / ss) / size, (py + (j + 0.5) / ss) / size) for i in range(ss) for j in range(ss)
            )
            a = hits / (ss * ss)
            if background is None:  # outline icon: white, transparent elsewhere
                out += bytes((255, 255, 255, round(a * 255)))
            else:
                r, g, b = (round(c + (255 - c) * a) for c in background)
                out += bytes((r, g, b, 255))
    return _png(size, size, bytes(out))


def write_icons() -> None:
    COLOR.write_bytes(draw_icon(192, (0x0B, 0x5C, 0xAD)))
    OUTLINE.write_bytes(draw_icon(32, None))


def png_size(data: bytes) -> tuple[int, int]:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    return struct.unpack(">II", data[16:24])


# ---- manifest and package ----------------------------------------------------------------------------


def _configured_app_id() -> str | None:
    try:
        sys.path.insert(0, str(HERE.parent.parent))
        from bot.settings import Settings

        return Settings().microsoft_app_id  # type: ignore[call-arg]
    except Exception:
        return os.environ.get("MicrosoftAppId") or None


def render_manifest(app_id: str, values: dict[str, str] | None = None) -> dict:
    if not GUID.match(app_id or ""):
        raise ValueError(f"the bot's app id must be a GUID (the Azure Bot's Microsoft App ID), got {app_id!r}")
    subs = {**DEFAULTS, **(values or {}), "BOT_ID": app_id}
    text = MANIFEST.read_text(encoding="utf-8")
    missing = sorted({m.group(1) for m in PLACEHOLDER.finditer(text)} - subs.keys())
    if missing:
        raise ValueError(f"no value for placeholder(s): {', '.join(missing)}")
    filled = PLACEHOLDER.sub(lambda m: json.dumps(subs[m.group(1)])[1:-1], text)
    manifest = json.loads(filled)
    _check(manifest)
    return manifest


def _check(manifest: dict) -> None:
    """The checks Teams' upload would fail on that are easy to get wrong when editing the template."""
    problems = []
    if len(manifest["name"]["short"]) > 30:
        problems.append("name.short is longer than 30 characters")
    if len(manifest["description"]["short"]) > 80:
        problems.append("description.short is longer than 80 characters")
    if len(manifest["description"]["full"]) > 4000:
        problems.append("description.full is longer than 4000 characters")
    for bot in manifest.get("bots", []):
        for cl in bot.get("commandLists", []):
            if len(cl["commands"]) > 10:
                problems.append("a command list has more than 10 commands")
            for cmd in cl["commands"]:
                if len(cmd["title"]) > 32 or len(cmd["description"]) > 128:
                    problems.append(f"command {cmd['title']!r}: title > 32 or description > 128 characters")
    if problems:
        raise ValueError("manifest template: " + "; ".join(problems))


def build(app_id: str, out: Path, values: dict[str, str] | None = None) -> Path:
    manifest = render_manifest(app_id, values)
    if not COLOR.exists() or not OUTLINE.exists():
        write_icons()
    color, outline = COLOR.read_bytes(), OUTLINE.read_bytes()
    if png_size(color) != (192, 192) or png_size(outline) != (32, 32):
        raise ValueError("icons must be color.png 192x192 and outline.png 32x32")
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
        z.writestr(manifest["icons"]["color"], color)
        z.writestr(manifest["icons"]["outline"], outline)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build the Teams app package (manifest.json + icons) for upload.")
    p.add_argument("--app-id", help="the Azure Bot's Microsoft App ID (default: MicrosoftAppId from the environment / .env)")
    p.add_argument("--out", default="dist/scim-help-teams.zip", help="zip to write (default: %(default)s)")
    p.add_argument("--version", dest="app_version", default=DEFAULTS["APP_VERSION"], help="app version (bump it to update an uploaded app)")
    p.add_argument("--developer-name", default=DEFAULTS["DEVELOPER_NAME"])
    p.add_argument("--website-url", default=DEFAULTS["WEBSITE_URL"])
    p.add_argument("--privacy-url", default=DEFAULTS["PRIVACY_URL"])
    p.add_argument("--terms-url", default=DEFAULTS["TERMS_URL"])
    p.add_argument("--icons", action="store_true", help="redraw color.png and outline.png first")
    args = p.parse_args(argv)
    if args.icons:
        write_icons()
    app_id = args.app_id or _configured_app_id()
    if not app_id:
        print("error: no app id: pass --app-id or set MicrosoftAppId", file=sys.stderr)
        return 2
    values = {
        "APP_VERSION": args.app_version,
        "DEVELOPER_NAME": args.developer_name,
        "WEBSITE_URL": args.website_url,
        "PRIVACY_URL": args.privacy_url,
        "TERMS_URL": args.terms_url,
    }
    try:
        out = build(app_id, Path(args.out), values)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} — upload it in Teams: Apps > Manage your apps > Upload an app")
    return 0


if __name__ == "__main__":
    sys.exit(main())
