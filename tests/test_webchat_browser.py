"""The web chat end to end in a real headless Chromium, driven over the Chrome DevTools Protocol.

No browser download and no extra package: the Debian `chromium` binary is started with
`--remote-debugging-port=0`, the port is read from `DevToolsActivePort` in its profile directory, and the
protocol is spoken over aiohttp's websocket client. The server is the real `scim-help serve` process on a
free port. Clicks and keys are real input events (Input.dispatchMouseEvent / dispatchKeyEvent), not
`element.click()`.

Skipped only when chromium is missing and CI is not set; in CI a missing browser is a failure.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("SCIM_HELP_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
WAIT = 30.0  # generous upper bound for any one UI condition; never a timing assertion

REPORT = (
    "We can't turn on SCIM provisioning in the Cato Management Application: the setting refuses to save "
    "and shows an error. We provision users from Entra ID."
)
ANSWERS = {
    "account": "Contoso Pharma (acct 41872)",
    "upns": "amelia.ross@contosopharma.com",
    "groups": "Cato-Remote-Users",
}


def _chromium_or_skip() -> str:
    if os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if os.environ.get("CI"):
        pytest.fail(f"chromium is required in CI but {CHROMIUM} is missing (apt-get install -y chromium)")
    pytest.skip(f"chromium not installed at {CHROMIUM} (apt-get install -y chromium); CI runs this test")


# ---- a minimal CDP client --------------------------------------------------------------------------------


class CDPError(Exception):
    pass


class Page:
    """One attached page target (flattened session) on a browser websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self.session: str | None = None
        self._next = 0
        self._pending: dict[int, asyncio.Future] = {}
        self.events: list[dict] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self._pending:
                fut = self._pending.pop(data["id"])
                if not fut.done():
                    if "error" in data:
                        fut.set_exception(CDPError(f"{data['error']}"))
                    else:
                        fut.set_result(data.get("result", {}))
            elif "method" in data:
                self.events.append(data)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(CDPError("browser connection closed"))

    async def send(self, method: str, params: dict | None = None, *, browser: bool = False) -> dict:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if self.session and not browser:
            msg["sessionId"] = self.session
        fut = asyncio.get_running_loop().create_future()
        self._pending[self._next] = fut
        await self.ws.send_str(json.dumps(msg))
        return await asyncio.wait_for(fut, WAIT)

    async def eval(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            raise CDPError(f"{expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        guarded = f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return false; }} }})()"
        while True:
            try:
                value = await self.eval(guarded)
            except CDPError:  # the page is navigating: its execution context is being replaced
                value = None
            if value:
                return value
            if loop.time() > deadline:
                raise AssertionError(f"timed out waiting for {what} ({expression})")
            await asyncio.sleep(0.05)

    async def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        rect = await self.eval(
            f"""(() => {{
                const el = document.querySelector({json.dumps(selector)});
                if (!el) return null;
                el.scrollIntoView({{block: "center"}});
                const r = el.getBoundingClientRect();
                return {{x: r.left + r.width / 2, y: r.top + r.height / 2, disabled: !!el.disabled}};
            }})()"""
        )
        assert rect, f"nothing matches {selector}"
        assert not rect["disabled"], f"{selector} is disabled"
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": rect["x"], "y": rect["y"], "button": "left", "clickCount": 1},
            )

    async def press_enter(self) -> None:
        for kind in ("keyDown", "keyUp"):
            params = {"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}
            if kind == "keyDown":
                params["text"] = "\r"
            await self.send("Input.dispatchKeyEvent", params)

    async def press_tab(self) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.send("Input.dispatchKeyEvent", {"type": kind, "key": "Tab", "code": "Tab", "windowsVirtualKeyCode": 9})

    async def paste(self) -> None:
        """Ctrl+V into the focused element: the browser's own paste, with the page's paste event and maxlength."""
        down = {"key": "v", "code": "KeyV", "windowsVirtualKeyCode": 86, "modifiers": 2}
        await self.send("Input.dispatchKeyEvent", {"type": "rawKeyDown", **down, "commands": ["paste"]})
        await self.send("Input.dispatchKeyEvent", {"type": "keyUp", **down})

    async def type(self, text: str) -> None:
        await self.send("Input.insertText", {"text": text})

    async def close(self) -> None:
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


# ---- fixtures ---------------------------------------------------------------------------------------------


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCIM_HELP_", "SLACK_", "Microsoft")) and k != "PORT"}
    env.update({"SCIM_HELP_DATA_DIR": str(tmp / "data"), "PYTHONUNBUFFERED": "1"})
    return env


@pytest.fixture
def server(tmp_path):
    """The real `scim-help serve` on a free port; yields its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None  # stdout=PIPE
    try:
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            line = proc.stdout.readline() if sel.select(60) else ""
        assert "is running: open http://" in line, line + (proc.stderr.read() if proc.poll() is not None else "")
        yield line.split("open ", 1)[1].split(" ", 1)[0]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        err = proc.stderr.read()
        assert code == 0, err
        assert "Traceback" not in err, err


@pytest.fixture
def chromium(tmp_path):
    binary = _chromium_or_skip()
    profile = Path(tempfile.mkdtemp(prefix="scim-help-chromium-"))
    proc = subprocess.Popen(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc, profile
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


async def _devtools_url(proc: subprocess.Popen, profile: Path) -> str:
    port_file = profile / "DevToolsActivePort"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        if port_file.exists():
            lines = port_file.read_text().split()
            if len(lines) >= 2:
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        if proc.poll() is not None:
            raise AssertionError("chromium exited: " + proc.stderr.read().decode(errors="replace")[-2000:])
        if loop.time() > deadline:
            raise AssertionError("chromium did not write DevToolsActivePort")
        await asyncio.sleep(0.05)


# ---- the test -----------------------------------------------------------------------------------------------

STATE_JS = """(() => {
    const live = [...document.querySelectorAll('.choices button:not(:disabled)')].map(b => b.dataset.choice);
    return {
        busy: document.body.dataset.busy === 'true',
        phase: document.body.dataset.phase,
        asking: document.body.dataset.asking,
        choices: live,
        bots: document.querySelectorAll('.msg.bot').length,
        tickets: document.querySelectorAll('.ticket').length,
    };
})()"""


async def _settle(page: Page, bots_before: int) -> dict:
    await page.wait_for(
        f"document.body.dataset.busy === 'false' && document.querySelectorAll('.msg.bot').length > {bots_before}",
        "the bot's answer",
    )
    return await page.eval(STATE_JS)


def _decide(state: dict) -> tuple[str, str] | None:
    ids = state["choices"]
    if state["tickets"]:
        return None
    for wanted in ("cannot-enable", "idp:entra", "fixed:no"):
        if wanted in ids:
            return ("click", wanted)
    if state["asking"] in ANSWERS:
        return ("type", ANSWERS[state["asking"]])
    if ids:
        return ("click", ids[0])
    return ("type", "talk to a human")


async def _open(page: Page, server: str, *, width: int, height: int, mobile: bool) -> None:
    """Attach a fresh tab with the given viewport, motion reduced (no mid-animation geometry), clipboard allowed."""
    target = await page.send("Target.createTarget", {"url": "about:blank"})
    attached = await page.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
    page.session = attached["sessionId"]
    for domain in ("Page", "Runtime", "Log"):
        await page.send(f"{domain}.enable")
    await page.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )
    await page.send("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]})
    await page.send(
        "Browser.grantPermissions",
        {"origin": server.rstrip("/"), "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
        browser=True,
    )


def _problems(page: Page) -> list[dict]:
    """Script errors and console errors (a CSP violation is one) seen so far."""
    return [
        e for e in page.events
        if e["method"] == "Runtime.exceptionThrown"
        or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
    ]


async def test_webchat_in_a_real_browser(server, chromium, tmp_path):
    proc, profile = chromium
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    url = await _devtools_url(proc, profile)

    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, max_msg_size=0) as ws:
            page = Page(ws)
            try:
                await _open(page, server, width=1100, height=1500, mobile=False)
                await page.send(
                    "Browser.setDownloadBehavior",
                    {"behavior": "allow", "downloadPath": str(downloads), "eventsEnabled": True},
                    browser=True,
                )

                # 1. The page greets with the symptom buttons.
                await page.send("Page.navigate", {"url": server})
                await page.wait_for(
                    "document.body.dataset.busy === 'false' && document.querySelectorAll('.msg.bot .choices button').length > 0",
                    "the greeting",
                )
                assert (await page.eval("document.title")).startswith("scim-help")
                conversation = await page.eval("localStorage.getItem('scim-help.conversation')")
                assert conversation and conversation.startswith("web:")

                # 2. Type the report and send it with Enter.
                await page.click("#composer-input")
                assert await page.eval("document.activeElement.id") == "composer-input"
                await page.type(REPORT)
                bots = (await page.eval(STATE_JS))["bots"]
                await page.press_enter()
                state = await _settle(page, bots)
                assert await page.eval("document.querySelector('.msg.admin').textContent.includes('refuses to save')")
                assert await page.eval("document.getElementById('composer-input').value") == ""

                # 3. Click / type through the conversation until the ticket appears.
                for _ in range(25):
                    action = _decide(state)
                    if action is None:
                        break
                    kind, value = action
                    if kind == "click":
                        await page.click(f'.choices button[data-choice="{value}"]:not(:disabled)')
                    else:
                        await page.click("#composer-input")
                        await page.type(value)
                        await page.press_enter()
                    state = await _settle(page, state["bots"])
                assert state["tickets"] == 1, state

                # The pasted error is quoted, console paths formatted, resolution steps numbered.
                assert await page.eval("document.querySelectorAll('.msg.bot .quote q').length > 0")
                assert await page.eval("document.querySelectorAll('.msg.bot .path .seg').length > 1")
                assert await page.eval("document.querySelectorAll('.msg.bot[data-kind=resolution] ol.steps li').length > 0")
                assert await page.eval("document.querySelectorAll('.choices button:not(:disabled)').length") > 0
                # Old questions' buttons are switched off: only the feedback / start-over ones are live.
                live = set((await page.eval(STATE_JS))["choices"])
                assert live <= {"helpful:yes", "helpful:no", "cmd:restart"}, live

                # 4. The ticket: copy, download .md, download .json — all real <button>s.
                tags = await page.eval(
                    "[...document.querySelectorAll('.ticket [data-action]')].map(b => b.tagName + ':' + b.dataset.action)"
                )
                assert tags == ["BUTTON:copy", "BUTTON:download-md", "BUTTON:download-json"]
                assert await page.eval("!!document.querySelector('.msg.bot[data-kind=ticket] a[href^=\"https://\"][rel~=noopener]')")
                body = await page.eval("document.querySelector('.ticket pre').textContent")
                assert "amelia.ross@contosopharma.com" in body and "Contoso Pharma" in body

                await page.click('.ticket [data-action="copy"]')
                await page.wait_for("document.getElementById('status').textContent.includes('copied')", "copy confirmation")
                clipboard = await page.eval("navigator.clipboard.readText().catch(e => 'unreadable: ' + e)")
                assert clipboard == body, clipboard[:200]

                await page.click('.ticket [data-action="download-md"]')
                await page.click('.ticket [data-action="download-json"]')
                loop = asyncio.get_running_loop()
                deadline = loop.time() + WAIT
                while True:
                    done = sorted(p.name for p in downloads.iterdir() if not p.name.endswith(".crdownload"))
                    if any(n.endswith(".md") for n in done) and any(n.endswith(".json") for n in done):
                        break
                    assert loop.time() < deadline, f"downloads did not arrive: {done}"
                    await asyncio.sleep(0.05)
                md = next(downloads.glob("*.md")).read_text()
                assert md == body
                doc = json.loads(next(downloads.glob("*.json")).read_text())
                assert doc["symptom"] == "cannot-enable" and doc["upns"] == ["amelia.ross@contosopharma.com"]

                shot = await page.send("Page.captureScreenshot", {"format": "png"})
                (ARTIFACTS / "webchat.png").write_bytes(base64.b64decode(shot["data"]))

                # 5. Reload: the same conversation and its ticket come back.
                count = (await page.eval(STATE_JS))["bots"]
                await page.send("Page.reload")
                await page.wait_for(
                    f"document.body.dataset.busy === 'false' && document.querySelectorAll('.msg.bot').length === {count}",
                    "the restored transcript",
                )
                assert await page.eval("localStorage.getItem('scim-help.conversation')") == conversation
                assert (await page.eval(STATE_JS))["tickets"] == 1

                # 6. Keyboard only: focus the feedback button and press Enter.
                await page.eval("document.querySelector('.choices button[data-choice=\"helpful:yes\"]').focus()")
                bots = (await page.eval(STATE_JS))["bots"]
                await page.press_enter()
                await _settle(page, bots)
                assert await page.eval("document.querySelector('.msg.bot:last-of-type').textContent.includes('Thanks')")

                # 7. Start over: a new episode with the symptom buttons, same conversation id.
                bots = (await page.eval(STATE_JS))["bots"]
                await page.click("#restart")
                state = await _settle(page, bots)
                assert "cannot-enable" in state["choices"]
                assert await page.eval("document.querySelectorAll('.divider').length") == 1

                # No script errors and no CSP violations along the way.
                assert not _problems(page), _problems(page)
            finally:
                await page.close()


# ---- a phone ------------------------------------------------------------------------------------------------

# Where things are on the page, in CSS px of the viewport.
LAYOUT_JS = """(() => {
    const box = el => { const r = el.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, height: r.height}; };
    const bots = document.querySelectorAll('.msg.bot');
    return {
        viewport: window.innerHeight,
        pageScroll: document.scrollingElement.scrollTop,
        dock: box(document.querySelector('.dock')),
        main: box(document.getElementById('main')),
        input: box(document.getElementById('composer-input')),
        first: bots.length ? box(bots[0]) : null,
        last: bots.length ? box(bots[bots.length - 1]) : null,
    };
})()"""

FOCUS_JS = """(() => {
    const a = document.activeElement;
    const live = document.querySelector('.choices button:not(:disabled)');
    const bots = document.querySelectorAll('.msg.bot');
    return {tag: a.tagName, id: a.id, choice: a.dataset.choice || null, first: live ? live.dataset.choice : null,
            onFirst: a === live, inLastReply: bots.length > 0 && bots[bots.length - 1].contains(a)};
})()"""


def test_the_page_and_the_server_agree_on_the_message_limit():
    """What the box holds, the server takes: maxlength counts UTF-16 units and the server code points, so the
    page is never the looser of the two (and the 16 KB body limit fits 4,000 of any character but controls)."""
    from bot.channels.web import MAX_TEXT

    html = (ROOT / "bot" / "web" / "index.html").read_text()
    assert f'maxlength="{MAX_TEXT}"' in html


async def test_webchat_on_a_phone(server, chromium):
    """400 x 800: the conversation gets the room, the greeting is read from its top, a click does not throw
    focus onto the next buttons, and a paste over the limit says what was left out."""
    proc, profile = chromium
    url = await _devtools_url(proc, profile)
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, max_msg_size=0) as ws:
            page = Page(ws)
            try:
                await _open(page, server, width=400, height=800, mobile=True)
                await page.send("Page.navigate", {"url": server})
                await page.wait_for(
                    "document.body.dataset.busy === 'false' && document.querySelectorAll('.msg.bot .choices button').length > 0",
                    "the greeting",
                )
                assert await page.eval("window.innerWidth") == 400

                # The composer is compact; the conversation has the screen (main's files: 174 of 800 px).
                at_load = await page.eval(LAYOUT_JS)
                share = at_load["dock"]["height"] / at_load["viewport"]
                assert share <= 0.15, f"the composer takes {at_load['dock']['height']:.0f} of {at_load['viewport']} px"
                assert at_load["main"]["height"] >= 0.75 * at_load["viewport"], at_load

                # The greeting is read from its top: nothing of it is scrolled away above the log.
                assert at_load["first"]["top"] >= at_load["main"]["top"], at_load

                # The box grows with what is typed, up to a cap.
                await page.click("#composer-input")
                await page.type("line\n" * 3 + "line")
                grown = await page.eval(LAYOUT_JS)
                assert grown["input"]["height"] > at_load["input"]["height"] + 20, (at_load["input"], grown["input"])
                await page.type("\nline" * 40)
                capped = await page.eval(LAYOUT_JS)
                assert grown["input"]["height"] < capped["input"]["height"] <= 0.3 * capped["viewport"], capped["input"]
                await page.eval("(() => { const i = document.getElementById('composer-input'); i.value = ''; "
                                "i.dispatchEvent(new Event('input')); })()")
                assert (await page.eval(LAYOUT_JS))["input"]["height"] == at_load["input"]["height"]

                # A click on an answer: the reply comes into view from its top and focus is not thrown onto
                # the next question's first button — but Tab still gets there.
                bots = (await page.eval(STATE_JS))["bots"]
                await page.click('.choices button[data-choice="cannot-enable"]')
                state = await _settle(page, bots)
                assert state["choices"], state
                after = await page.eval(LAYOUT_JS)
                assert after["main"]["top"] <= after["last"]["top"] < after["main"]["bottom"], after
                focus = await page.eval(FOCUS_JS)
                assert not focus["onFirst"] and focus["tag"] != "BUTTON", focus
                assert focus["tag"] != "BODY" and (focus["inLastReply"] or focus["id"] == "composer-input"), focus
                await page.press_tab()
                focus = await page.eval(FOCUS_JS)
                assert focus["onFirst"], focus

                # A paste over the limit: cut to the limit, and the page says so next to the box.
                pasted = "SCIM error: user amelia.ross@contosopharma.com was not created. " * 100
                pasted = pasted[:5000]
                await page.eval(f"navigator.clipboard.writeText({json.dumps(pasted)})")
                await page.click("#composer-input")
                await page.paste()
                assert await page.eval("document.getElementById('composer-input').value.length") == 4000
                note = await page.wait_for(
                    "(() => { const n = document.getElementById('composer-note'); "
                    "return n && n.offsetHeight > 0 && n.textContent; })()",
                    "the note about the cut paste",
                )
                assert "5,000" in note and "4,000" in note, note
                assert await page.eval(
                    "document.getElementById('composer-input').getAttribute('aria-describedby').split(' ').includes('composer-note')"
                )
                # What is left is what the server takes: sent without an error, and the note is gone.
                bots = (await page.eval(STATE_JS))["bots"]
                await page.press_enter()
                await _settle(page, bots)
                assert not await page.eval("document.querySelector('.msg.error')")
                assert await page.eval("[...document.querySelectorAll('.msg.admin')].pop().textContent.length") >= 3900
                assert not await page.eval("document.getElementById('composer-note').textContent")
                # Only the log scrolls; the page itself stays put, so the dock never slides off the screen.
                assert (await page.eval(LAYOUT_JS))["pageScroll"] == 0

                shot = await page.send("Page.captureScreenshot", {"format": "png"})
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                (ARTIFACTS / "webchat-phone.png").write_bytes(base64.b64decode(shot["data"]))
                assert not _problems(page), _problems(page)
            finally:
                await page.close()
