"""The architecture's rules, held by reading every import of bot/ and knowledge/ (ast, nothing imported):

- knowledge/ imports nothing from bot/: the pack is data and its schema, usable without the bot;
- the core (the engine, the message reader, state, events, the ticket, the stores) reaches no channel,
  renderer or server module, directly or through any other module of ours;
- a channel never imports another channel;
- a channel reaches the core only through its door, bot.service (`Conversations`, the `Channel` protocol and
  the store types a channel handles), and speaks bot.events with it: never the engine, the reader, the
  state, the ticket, the stores or the runtime directly;
- each platform SDK is imported only inside its own package: Slack's in bot/channels/slack, Teams' in
  bot/channels/teams, MSAL in bot/graph;
- a module loaded by name (`importlib.import_module(f"bot.channels.{name}")`, as the server loads its
  channels) counts as imported by the module that names it; a name the checker cannot work out fails.

And the size of the rooms: no module over 600 lines and no function over 80, anywhere in bot/ and
knowledge/ (linted or not) and in the other paths `./dev lint` checks (`[tool.scim-help] lint` in
pyproject.toml), except the test modules listed under `oversize` there until they are split.

The checker is tested on small planted trees too, so a rule that silently stopped matching would show.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CORE = ("bot.engine", "bot.understand", "bot.state", "bot.events", "bot.ticket", "bot.store")
OUTSIDE_THE_CORE = ("bot.channels", "bot.render", "bot.server")
# What a channel may import of the core and its wiring: the door, and the language spoken through it.
DOOR = "bot.service"
CHANNELS_SPEAK = ("bot.events",)
BEHIND_THE_DOOR = (*CORE, "bot.runtime", "bot.server")
# SDK top-level package -> the only package of ours that may import it.
SDK_HOME = {
    "slack_bolt": "bot.channels.slack",
    "slack_sdk": "bot.channels.slack",
    "microsoft_teams": "bot.channels.teams",
    "microsoft_agents": "bot.channels.teams",
    "botbuilder": "bot.channels.teams",
    "botframework": "bot.channels.teams",
    "msal": "bot.graph",
}
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


# ---- reading the imports ---------------------------------------------------------------------------------


@dataclass
class Module:
    name: str
    path: Path
    is_package: bool
    imports: dict[str, int] = field(default_factory=dict)  # imported module name -> first line
    names: dict[str, int] = field(default_factory=dict)  # `from a import b`: a.b, an import if a.b is a module
    unresolved: list[str] = field(default_factory=list)  # dynamic imports that could not be followed


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def read_tree(root: Path, packages: tuple[str, ...] = ("bot", "knowledge")) -> dict[str, Module]:
    """Every module under `root`/<package>, with the modules it imports (static and by name)."""
    modules: dict[str, Module] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts = parts[:-1]
            modules[".".join(parts)] = Module(".".join(parts), path, is_package)
    loaders: dict[str, list[Template]] = {}
    trees = {name: ast.parse(m.path.read_text(encoding="utf-8"), str(m.path)) for name, m in modules.items()}
    for name, tree in trees.items():
        _static_imports(modules[name], tree, packages)
        for fn, template in _LoaderFinder(modules[name]).find(tree):
            loaders.setdefault(fn, []).append(template)
    for name, tree in trees.items():
        mod = modules[name]
        _calls_to_loaders(mod, tree, loaders)
        for sub, line in mod.names.items():
            if sub in modules:
                mod.imports.setdefault(sub, line)
    return modules


def _static_imports(mod: Module, tree: ast.Module, packages: tuple[str, ...]) -> None:
    package = mod.name if mod.is_package else mod.name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                mod.imports.setdefault(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            mod.imports.setdefault(target, node.lineno)
            if target.split(".")[0] in packages:  # `from bot.channels import slack` imports bot.channels.slack
                for alias in node.names:
                    mod.names.setdefault(f"{target}.{alias.name}", node.lineno)


# A module name built from constant text and at most the function's parameters: ("bot.channels.", 0) is
# f"bot.channels.{<parameter 0>}".
Template = tuple[str | int, ...]
_IMPORTERS = {"import_module", "__import__"}


def _is_importer(call: ast.Call) -> bool:
    f = call.func
    return (isinstance(f, ast.Name) and f.id in _IMPORTERS) or (isinstance(f, ast.Attribute) and f.attr in _IMPORTERS)


class _LoaderFinder:
    """Dynamic imports: a constant name is an import of the module that makes it; a name made of a
    function's parameter makes that function a loader, followed at its call sites."""

    def __init__(self, mod: Module):
        self.mod = mod

    def find(self, tree: ast.Module) -> Iterator[tuple[str, Template]]:
        yield from self._scope(tree, [], tree.body)

    def _scope(self, node: ast.AST, params: list[str], body: list[ast.stmt]) -> Iterator[tuple[str, Template]]:
        local: dict[str, ast.expr] = {}
        for stmt in body:
            for sub in ast.walk(stmt):
                if isinstance(sub, ast.Assign) and len(sub.targets) == 1 and isinstance(sub.targets[0], ast.Name):
                    local[sub.targets[0].id] = sub.value
        for sub in _walk_scope(body):
            if isinstance(sub, ast.FunctionDef | ast.AsyncFunctionDef):
                yield from self._scope(sub, [a.arg for a in sub.args.args], sub.body)
            elif isinstance(sub, ast.Call) and _is_importer(sub) and sub.args:
                template = _template(sub.args[0], params, local)
                if template is None:
                    self.mod.unresolved.append(f"{self.mod.path}:{sub.lineno}: {ast.unparse(sub)}")
                elif all(isinstance(p, str) for p in template):
                    self.mod.imports.setdefault("".join(map(str, template)), sub.lineno)
                elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    yield node.name, template


def _walk_scope(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """The nodes of one scope: nested functions are yielded but not entered."""
    todo: list[ast.AST] = list(reversed(body))
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            todo.extend(reversed(list(ast.iter_child_nodes(node))))


def _template(expr: ast.expr, params: list[str], local: dict[str, ast.expr], depth: int = 0) -> Template | None:
    if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
        return (expr.value,)
    if isinstance(expr, ast.Name):
        if expr.id in params:
            return (params.index(expr.id),)
        if expr.id in local and depth < 5:
            return _template(local[expr.id], params, local, depth + 1)
        return None
    if isinstance(expr, ast.JoinedStr):
        out: list[str | int] = []
        for part in expr.values:
            if isinstance(part, ast.FormattedValue):
                sub = _template(part.value, params, local, depth + 1)
            else:
                sub = _template(part, params, local, depth + 1)
            if sub is None:
                return None
            out.extend(sub)
        return tuple(out)
    if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
        left, right = _template(expr.left, params, local, depth + 1), _template(expr.right, params, local, depth + 1)
        return None if left is None or right is None else left + right
    return None


def _calls_to_loaders(mod: Module, tree: ast.Module, loaders: dict[str, list[Template]]) -> None:
    scopes: list[list[ast.stmt]] = [tree.body]
    scopes += [n.body for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    for body in scopes:
        nodes = list(_walk_scope(body))
        known = _constant_names(nodes)
        for node in nodes:
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            fn = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            for template in loaders.get(fn or "", []):
                for name in _fill(mod, node, template, known):
                    mod.imports.setdefault(name, node.lineno)


def _fill(mod: Module, call: ast.Call, template: Template, known: dict[str, list[str]]) -> list[str]:
    """The module names a call to a loader makes; none (and an unresolved entry) when one is not written here."""
    names = [""]
    for part in template:
        values = [part] if isinstance(part, str) else _argument_values(call, part, known)
        if not values:
            mod.unresolved.append(f"{mod.path}:{call.lineno}: {ast.unparse(call)} (loads a module by a name not written here)")
            return []
        names = [n + v for n in names for v in values]
    return names


def _constant_names(nodes: list[ast.AST]) -> dict[str, list[str]]:
    """Names one scope binds to string constants: `x = "a"`, or `for x in ("a", "b")`."""
    out: dict[str, list[str]] = {}
    for node in nodes:
        if isinstance(node, ast.For) and isinstance(node.target, ast.Name) and isinstance(node.iter, ast.Tuple | ast.List):
            items = node.iter.elts
            if items and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in items):
                out.setdefault(node.target.id, []).extend(str(e.value) for e in items if isinstance(e, ast.Constant))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                out.setdefault(node.targets[0].id, []).append(node.value.value)
    return out


def _argument_values(call: ast.Call, index: int, known: dict[str, list[str]]) -> list[str]:
    """The string values the call's positional argument `index` can have, or [] when not written here."""
    if index >= len(call.args):
        return []
    arg = call.args[index]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return [arg.value]
    if isinstance(arg, ast.Name):
        return known.get(arg.id, [])
    return []


# ---- the rules -------------------------------------------------------------------------------------------


def _ours(modules: dict[str, Module], target: str) -> str | None:
    """The module of ours `target` names (the longest known prefix: `bot.events.Incoming` -> `bot.events`)."""
    while target:
        if target in modules:
            return target
        target = target.rpartition(".")[0]
    return None


def _channel(name: str) -> str | None:
    parts = name.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["bot", "channels"] else None


def _path_to_outside(modules: dict[str, Module], start: str) -> list[str] | None:
    """The shortest chain of our imports from `start` to a channel, renderer or server module, if any,
    through modules outside the core (a chain through another core module is that module's to report)."""
    seen = {start} | {m for m in modules if any(_within(m, c) for c in CORE)}
    todo = [[start]]
    while todo:
        chain = todo.pop(0)
        for target in sorted(modules[chain[-1]].imports):
            if any(_within(target, p) for p in OUTSIDE_THE_CORE):
                return chain + [target]
            ours = _ours(modules, target)
            if ours is not None and ours not in seen:
                seen.add(ours)
                todo.append(chain + [ours])
    return None


def violations(modules: dict[str, Module]) -> list[str]:
    out: list[str] = []
    for name, mod in sorted(modules.items()):
        out += [f"{name}: cannot follow the dynamic import {u}" for u in mod.unresolved]
        found: dict[tuple[int, str], str] = {}  # (line, rule) -> the most specific module named there
        for target, line in mod.imports.items():
            for rule in _broken(name, target):
                if len(target) > len(found.get((line, rule), "")):
                    found[(line, rule)] = target
        for (line, rule), target in sorted(found.items()):
            out.append(f"{name} ({mod.path.name}:{line}) imports {target}: {rule}")
        if any(_within(name, c) for c in CORE):
            chain = _path_to_outside(modules, name)
            if chain:
                out.append(f"{name} reaches {chain[-1]} ({' -> '.join(chain)}): the core knows no channel, renderer or server")
    return out


def _broken(name: str, target: str) -> list[str]:
    """The import rules `name` importing `target` breaks (the core's rule is checked along whole chains)."""
    out = []
    if _within(name, "knowledge") and _within(target, "bot"):
        out.append("knowledge/ imports nothing from bot/")
    own, theirs = _channel(name), _channel(target)
    if own and theirs and own != theirs:
        out.append("a channel never imports another channel")
    if own and any(_within(target, c) for c in BEHIND_THE_DOOR) and not any(_within(target, c) for c in CHANNELS_SPEAK):
        out.append(f"a channel reaches the core only through {DOOR}")
    top = target.split(".")[0]
    if top in SDK_HOME and not _within(name, SDK_HOME[top]):
        out.append(f"the {top} SDK belongs in {SDK_HOME[top]} only")
    return out


# ---- on the real tree ------------------------------------------------------------------------------------


def test_the_tree_keeps_the_architecture_rules():
    modules = read_tree(ROOT)
    assert "bot.server" in modules and "bot.engine.core" in modules
    assert violations(modules) == []


def test_the_servers_channels_loaded_by_name_are_followed():
    server = read_tree(ROOT)["bot.server"]
    # bot/server.py imports slack and teams only as _optional_channel("slack") etc.: loaded by name.
    channels = {_channel(t) for t in server.imports if _channel(t)}
    assert {"slack", "teams", "web"} <= channels, f"the server's channels are no longer seen ({channels}): follow the new loading here"


def _lint_config() -> dict[str, list[str]]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["scim-help"]


def lint_paths() -> list[Path]:
    return [ROOT / p for p in _lint_config()["lint"]]


def oversize_paths() -> list[Path]:
    """Test and fake modules still to be split: linted, but not yet held to the size limits."""
    return [ROOT / p for p in _lint_config().get("oversize", [])]


def too_big(paths: list[Path]) -> list[str]:
    out = []
    files = sorted({f for p in paths for f in ([p] if p.is_file() else p.rglob("*.py"))})
    for f in files:
        src = f.read_text(encoding="utf-8")
        lines = len(src.splitlines())
        if lines > MAX_MODULE_LINES:
            out.append(f"{f.relative_to(ROOT) if f.is_relative_to(ROOT) else f}: {lines} lines (at most {MAX_MODULE_LINES})")
        for node in ast.walk(ast.parse(src, str(f))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    out.append(f"{f.name}:{node.lineno} {node.name}(): {n} lines (at most {MAX_FUNCTION_LINES})")
    return out


def test_rooms_are_small_in_bot_knowledge_and_the_linted_paths():
    paths, oversize = lint_paths(), oversize_paths()
    assert all(p.exists() for p in paths + oversize), [str(p) for p in paths + oversize if not p.exists()]
    # The exceptions are tests only, each also linted: bot/ and knowledge/ have none.
    assert all(p in paths and p.parts[len(ROOT.parts)] == "tests" for p in oversize), oversize
    # All of bot/ and knowledge/, not only what is linted: a module left off the lint list stays in bounds.
    held = [p for p in paths if p not in oversize]
    assert too_big([ROOT / "bot", ROOT / "knowledge", *held]) == []
    # An exception that now fits is taken off the list, so it cannot grow back unnoticed.
    assert [str(p) for p in oversize if not too_big([p])] == []


# ---- the checker itself, on planted trees ------------------------------------------------------------------

CLEAN = {
    "bot/__init__.py": "",
    "bot/events.py": "from pydantic import BaseModel\n",
    "bot/engine/__init__.py": "from bot.engine.core import Engine\n",
    "bot/engine/core.py": "from bot.events import Incoming\nfrom knowledge.schema import Bundle\nclass Engine: ...\n",
    "bot/state.py": "",
    "bot/ticket.py": "from bot.state import State\n",
    "bot/store/__init__.py": "",
    "bot/render/__init__.py": "",
    "bot/render/blocks.py": "from bot.events import Reply\n",
    "bot/channels/__init__.py": "",
    "bot/channels/slack/__init__.py": "from slack_bolt import App\nfrom .listeners import on\n",
    "bot/channels/slack/listeners.py": "from slack_sdk import WebClient\nfrom bot.render import blocks\nfrom bot.events import Incoming\nfrom bot.service import Conversations\n",
    "bot/service.py": "from bot.runtime import Runtime\nfrom bot.store.base import StoreUnavailable\n",
    "bot/runtime.py": "from bot.engine import Engine\n",
    "bot/channels/teams.py": "import botbuilder.core\n",
    "bot/graph/token.py": "import msal\n",
    "bot/server.py": (
        "import importlib\n"
        "def _optional(name):\n"
        "    module = f'bot.channels.{name}'\n"
        "    return importlib.import_module(module)\n"
        "slack = _optional('slack')\n"
    ),
    "knowledge/__init__.py": "",
    "knowledge/schema.py": "import pydantic\n",
}

PLANTED = {
    "knowledge imports bot": ({"knowledge/schema.py": "from bot.events import Incoming\n"}, "knowledge/ imports nothing from bot/"),
    "core imports a channel": ({"bot/engine/core.py": "from bot.channels.slack import listeners\n"}, "the core knows no channel"),
    "core imports a renderer, relatively": ({"bot/engine/core.py": "from ..render import blocks\n"}, "reaches bot.render"),
    "core reaches the server through another module": (
        {"bot/ticket.py": "import bot.helper\n", "bot/helper.py": "from bot import server\n"},
        "bot.ticket -> bot.helper -> bot.server",
    ),
    "core loads a renderer by name": (
        {"bot/state.py": "import importlib\ndef load(kind):\n    return importlib.import_module('bot.render.' + kind)\nR = load('blocks')\n"},
        "reaches bot.render.blocks",
    ),
    "a dynamic import that cannot be followed": (
        {"bot/state.py": "import importlib, os\nmod = importlib.import_module(os.environ['X'])\n"},
        "cannot follow the dynamic import",
    ),
    "a channel imports another": ({"bot/channels/teams.py": "from bot.channels.slack import listeners\n"}, "a channel never imports another channel"),
    "a channel loads another by name": (
        {"bot/channels/teams.py": "from importlib import import_module\nslack = import_module(f'bot.channels.{\"slack\"}')\n"},
        "a channel never imports another channel",
    ),
    "a channel imports the engine": ({"bot/channels/teams.py": "from bot.engine.core import Engine\n"}, "a channel reaches the core only through bot.service"),
    "a channel imports a store's internals": (
        {"bot/channels/slack/listeners.py": "from bot.store.base import StoreUnavailable\n"},
        "a channel reaches the core only through bot.service",
    ),
    "a channel is handed the runtime": ({"bot/channels/teams.py": "from bot import runtime\n"}, "a channel reaches the core only through bot.service"),
    "Slack's SDK in a renderer": ({"bot/render/blocks.py": "from slack_sdk.models.blocks import SectionBlock\n"}, "slack_sdk SDK belongs in bot.channels.slack"),
    "the Teams SDK in the server": ({"bot/server.py": "from microsoft_teams.api import Activity\n"}, "microsoft_teams SDK belongs in bot.channels.teams"),
    "msal in the engine": ({"bot/engine/core.py": "import msal\n"}, "msal SDK belongs in bot.graph"),
}


def _plant(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_a_clean_planted_tree_passes_and_the_servers_loading_is_followed(tmp_path):
    _plant(tmp_path, CLEAN)
    modules = read_tree(tmp_path)
    assert violations(modules) == []
    assert "bot.channels.slack" in modules["bot.server"].imports


@pytest.mark.parametrize("case", list(PLANTED))
def test_each_planted_violation_is_caught(tmp_path, case):
    overrides, expected = PLANTED[case]
    _plant(tmp_path, {**CLEAN, **overrides})
    found = violations(read_tree(tmp_path))
    assert len(found) == 1 and expected in found[0], found


def test_a_planted_big_room_is_caught(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(81))
    big = tmp_path / "big.py"
    big.write_text(f"def long():\n{body}\n" + "\n" * 600, encoding="utf-8")
    found = too_big([big])
    assert any("lines (at most 600)" in f for f in found) and any("long(): 82 lines" in f for f in found), found
