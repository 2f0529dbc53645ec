"""Reads a knowledge pack (manifest, classifier material, lexicon, messages) from YAML and reports every
problem with file, line and path.

PyYAML's composer gives each node its position; we walk that tree once to map every path
(`symptoms[2].checks[1]`) to a line, refuse duplicate keys (which plain YAML silently overwrites), and
translate pydantic's error locations and the graph checks' paths back into `file:line` messages.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from knowledge.schema import (
    GENERIC_IDP,
    TAG_PARTS,
    Bundle,
    ClassifierMaterial,
    Lexicon,
    Messages,
    Pack,
    Problem,
    classifier_problems,
    graph_problems,
    message_problems,
    wording_problems,
)

DEFAULT_PACK = Path(__file__).with_name("scim.yaml")


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: pack authors write `id: yes` / `kind: no` as plain words, and
    YAML 1.1 would silently turn them (and on/off/y/n) into True/False."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

M = TypeVar("M", bound=BaseModel)
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Issue:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '<top>'}: {self.message}"


class KnowledgeError(Exception):
    """A pack that cannot be used. `issues` lists every problem found, not just the first."""

    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def format_path(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Positions:
    def __init__(self, file: str):
        self.file = file
        self.lines: dict[Loc, int] = {}
        self.duplicates: list[Issue] = []

    def walk(self, node: yaml.Node, loc: Loc = ()) -> None:
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = key_node.value
                if key in seen:
                    self.duplicates.append(
                        Issue(self.file, key_node.start_mark.line + 1, format_path(loc + (key,)), f"duplicate key '{key}'")
                    )
                seen.add(key)
                self.lines[loc + (key,)] = key_node.start_mark.line + 1
                self.walk(value_node, loc + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self.walk(item, loc + (i,))

    def line(self, loc: Loc) -> int | None:
        # Errors may point below the deepest node that exists (a missing field): climb to its parent.
        for cut in range(len(loc), -1, -1):
            if loc[:cut] in self.lines:
                return self.lines[loc[:cut]]
        return None

    def issue(self, loc: Loc, message: str) -> Issue:
        return Issue(self.file, self.line(loc), format_path(loc), message)


def _read_yaml(path: Path) -> tuple[Any, _Positions]:
    shown = _display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KnowledgeError([Issue(shown, None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KnowledgeError([Issue(shown, None, "", f"cannot read: {exc}")]) from None
    positions = _Positions(shown)
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)  # _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise KnowledgeError([Issue(shown, line, "", f"YAML syntax: {exc.problem or exc}")]) from None
    except yaml.YAMLError as exc:
        raise KnowledgeError([Issue(shown, None, "", f"YAML: {exc}")]) from None
    if node is not None:
        positions.walk(node)
    if positions.duplicates:
        raise KnowledgeError(positions.duplicates)
    if not isinstance(data, dict):
        raise KnowledgeError([Issue(shown, 1, "", "expected a mapping at the top of the file")])
    return data, positions


def _validate(model: type[M], data: Any, positions: _Positions, context: dict[str, Any] | None = None) -> M:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            # Drop pydantic's own location parts: validator functions and the union tags of Worded
            # fields ("neutral" / "per-idp"), so the path reads as the file does.
            loc = tuple(
                p for p in err["loc"] if not (isinstance(p, str) and (p.startswith("function-") or p in TAG_PARTS))
            )
            issues.append(positions.issue(loc, err["msg"]))
        raise KnowledgeError(issues) from None


def _raise_problems(problems: list[Problem], positions: _Positions) -> None:
    if problems:
        raise KnowledgeError([positions.issue(loc, msg) for loc, msg in problems])


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def load_pack(path: str | os.PathLike[str] | None = None) -> Bundle:
    """Load and validate a pack manifest and its companion files. Raises KnowledgeError."""
    manifest = Path(path) if path else DEFAULT_PACK
    if manifest.is_dir():
        # A pack directory: its manifest is scim.yaml (the shipped pack) or pack.yaml.
        manifest = next((manifest / n for n in ("scim.yaml", "pack.yaml") if (manifest / n).exists()), manifest / "scim.yaml")
    data, positions = _read_yaml(manifest)
    generic = data.get("generic_idp") if isinstance(data.get("generic_idp"), str) else GENERIC_IDP
    context = {"generic_idp": generic}
    pack = _validate(Pack, data, positions, context)
    _raise_problems(graph_problems(pack) + wording_problems(pack), positions)

    cls_path = (manifest.parent / pack.classifier).resolve()
    cls_data, cls_pos = _read_yaml(cls_path)
    material = _validate(ClassifierMaterial, cls_data, cls_pos)
    _raise_problems(classifier_problems(material, pack), cls_pos)

    lex_path = (manifest.parent / pack.lexicon).resolve()
    lex_data, lex_pos = _read_yaml(lex_path)
    lexicon = _validate(Lexicon, lex_data, lex_pos)

    msg_path = (manifest.parent / pack.messages).resolve()
    msg_data, msg_pos = _read_yaml(msg_path)
    messages = _validate(Messages, msg_data, msg_pos, context)
    _raise_problems(message_problems(messages, pack), msg_pos)
    return Bundle(pack=pack, classifier=material, lexicon=lexicon, messages=messages, origin=str(manifest))
