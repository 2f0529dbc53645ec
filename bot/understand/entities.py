"""Entities in a message: the IdP (the pack's id and the name as written), UPNs and e-mails, group names, the
account name/number, an attribute named. Also the normalisers for ticket-field values."""

from __future__ import annotations

import re

from bot.redact import find_emails
from bot.understand import lexicon as lx
from bot.understand.reading import Entities
from knowledge.schema import Bundle

_WORDS = re.compile(r"[a-z0-9]+")


class EntityReader:
    def __init__(self, bundle: Bundle):
        names: list[tuple[str, str]] = []
        for idp in bundle.pack.idps:
            for a in (idp.name, *idp.aliases):
                names.append((a.lower(), idp.id))
            if idp.id != "other":
                names.append((idp.id, idp.id))
        known = {n for n, _ in names}
        fallback = "other" if "other" in bundle.idps else None
        if fallback:
            names += [(n, fallback) for n in lx.OTHER_IDPS if n not in known]
        # "another IdP (custom SCIM app)" is the pack's label, not a name anyone writes.
        names = [(n, i) for n, i in names if n and "(" not in n]
        names.sort(key=lambda x: len(x[0]), reverse=True)
        self._idp_of = {n: i for n, i in names}
        self._idp_rx = re.compile(
            r"(?<![a-z0-9])(?:" + "|".join(re.escape(n).replace(r"\ ", r"[\s-]?") for n, _ in names) + r")(?![a-z0-9])"
        )
        attr: list[tuple[str, str]] = [(v, canon) for canon, vs in lx.ATTRIBUTES.items() for v in vs]
        attr.sort(key=lambda x: len(x[0]), reverse=True)
        self._attr_of = dict(attr)
        self._attr_rx = re.compile(r"(?<![a-z0-9])(?:" + "|".join(re.escape(v) for v, _ in attr) + r")(?![a-z0-9])")
        self._attr_words = sorted({v for v, _ in attr})

    # ---- IdP ---------------------------------------------------------------------------------------

    def idp(self, norm: str, plain: str) -> tuple[str | None, str | None]:
        """(pack id, name as written). The IdP the admin insists on ("I said onelogin") wins; otherwise the
        most mentioned, and on a tie the one named last ("we moved from Okta to Entra")."""
        hits = list(self._idp_rx.finditer(norm))
        if not hits:
            return None, None
        asserted = [m for m in hits if lx.IDP_ASSERTED.search(norm[max(0, m.start() - 30) : m.start()])]
        counts: dict[str, int] = {}
        last: dict[str, re.Match[str]] = {}
        for m in hits:
            i = self._idp_of.get(" ".join(_WORDS.findall(m.group(0))), None) or self._lookup(m.group(0))
            if i is None:
                continue
            counts[i] = counts.get(i, 0) + 1
            last[i] = m
        if not counts:
            return None, None
        if asserted:
            m = asserted[-1]
            pid = self._lookup(m.group(0))
        else:
            pid = max(counts, key=lambda i: (counts[i], last[i].start()))
            m = last[pid]
        named = plain[m.start() : m.end()] if len(plain) == len(norm) else m.group(0)
        return pid, named

    def _lookup(self, surface: str) -> str | None:
        key = surface.replace("-", " ")
        key = " ".join(key.split())
        if key in self._idp_of:
            return self._idp_of[key]
        squashed = key.replace(" ", "")
        for n, i in self._idp_of.items():
            if n.replace(" ", "") == squashed:
                return i
        return None

    # ---- the rest ------------------------------------------------------------------------------------

    def attribute(self, norm: str) -> str | None:
        # A substring test first (C speed): most messages name no attribute, and a long alternation is slow.
        if not any(v in norm for v in self._attr_words):
            return None
        m = self._attr_rx.search(norm)
        return self._attr_of[m.group(0)] if m else None

    def attributes(self, norm: str) -> list[str]:
        out: list[str] = []
        for m in self._attr_rx.finditer(norm):
            a = self._attr_of[m.group(0)]
            if a not in out:
                out.append(a)
        return out

    def read(self, norm: str, plain: str, lines_plain: str) -> Entities:
        pid, named = self.idp(norm, plain)
        emails = tuple(find_emails(plain))
        return Entities(
            idp=pid,
            idp_named=named,
            upns=emails,
            emails=emails,
            groups=tuple(groups_in(plain)),
            account=account_in(plain),
            attribute=self.attribute(norm),
        )


# ---- groups ---------------------------------------------------------------------------------------------

_QUOTED_GROUP = re.compile(
    r"\bgroups?\s+(?:called |named |)[\"'“‘`]([^\"'”’`\n]{1,60})[\"'”’`]|[\"'“‘`]([^\"'”’`\n]{1,60})[\"'”’`]\s+(?:security |ad |m365 |)groups?\b",
    re.IGNORECASE,
)
_GROUP_WORD = re.compile(r"\bgroups?\b", re.IGNORECASE)
# The one or two words right before "group" (searched in a short window before each "group").
_BEFORE_GROUP = re.compile(r"([A-Za-z0-9][\w.&-]{0,40}(?:\s[A-Za-z0-9][\w.&-]{0,40})?)\s+(?:security\s+|ad\s+|m365\s+|)$")
_GROUP_CALLED = re.compile(r"\bgroups?\s+(?:called|named)\s+([A-Za-z0-9][\w.&-]{1,40})", re.IGNORECASE)
_GROUP_LIST = re.compile(r"\bgroups?\s*(?:are|is|:)\s*([^.?!\n]{1,200})", re.IGNORECASE)


def groups_in(plain: str) -> list[str]:
    out: list[str] = []

    def add(name: str) -> None:
        name = name.strip(" \"'“”‘’`.,;:")
        if not name or len(name) > 60:
            return
        if name.lower() in lx.GROUP_NOT_NAMES or all(w.lower() in lx.GROUP_NOT_NAMES for w in name.split()):
            return
        if name not in out and len(out) < 30:
            out.append(name)

    if "group" not in plain.lower():
        return out
    for m in _QUOTED_GROUP.finditer(plain):
        add(m.group(1) or m.group(2))
    for m in _GROUP_CALLED.finditer(plain):
        add(m.group(1))
    for g in _GROUP_WORD.finditer(plain):
        if g.group(0).lower() != "group":
            continue
        before = _BEFORE_GROUP.search(plain[max(0, g.start() - 90) : g.start()])
        if not before:
            continue
        words = before.group(1).split()
        # "the interns group": the last word or two before "group", minus filler ("is a member of the").
        while words and words[0].lower() in lx.GROUP_NOT_NAMES:
            words = words[1:]
        if words:
            add(" ".join(words))
    for m in _GROUP_LIST.finditer(plain):
        for part in re.split(r",|;|\band\b", m.group(1)):
            part = part.strip()
            if part and len(part.split()) <= 4:
                add(part)
    return out


def group_list(lines_plain: str) -> list[str]:
    """A ticket field's group list: "Sales-EU, Interns and Contractors", one per line, quoted or not."""
    text = re.sub(r"^\s*(?:the\s+)?(?:groups?|they)\s*(?:are|is|:)\s*", "", lines_plain, flags=re.IGNORECASE)
    parts = re.split(r"[,;\n]|\s+and\s+|\s*&\s*", text)
    out: list[str] = []
    for p in parts:
        p = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", p)  # list bullets
        p = re.sub(r"^(?:the|group|groups)\s+", "", p.strip(), flags=re.IGNORECASE)
        p = re.sub(r"\s+(?:group|groups)$", "", p, flags=re.IGNORECASE)
        p = p.strip(" \"'“”‘’`.")
        if p and p[:120] not in out:
            out.append(p[:120])
    return out[:30]


# ---- account ----------------------------------------------------------------------------------------------

_ACCOUNT_PREFIX = re.compile(
    r"^(?:(?:sure|ok|okay|yes|yeah|hi|so)[,.! ]+)*(?:(?:it'?s|it is|that'?s|that would be|we are|we're|this is|our|the|my)\s+)*"
    r"(?:cato\s+)?(?:(?:account|acct|tenant|company|customer)(?![\w]))?\s*(?:(?:name|number|no\.?|id)(?![\w])|#)?\s*(?:and\s+(?:name|number)\s*)?"
    r"(?:(?:is|are|would be)(?![\w])|=|:|-)?\s*",
    re.IGNORECASE,
)
_ACCOUNT_IN_TEXT = re.compile(
    r"\b(?:cato\s+)?(?:account|acct)\s*(?:name|number|no\.?|#|id)?\s*(?:is|=|:|-)\s*([A-Za-z0-9][\w&.'-]*(?:\s[A-Za-z0-9][\w&.'-]*){0,3}?(?:\s*[(/,#-]\s*#?\d{3,12}\)?)?)(?=[.,;!?\n]|$|\s+(?:and|but|we|our|the)\b)",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"#?\b(\d{3,12})\b")


def normalise_account(value: str) -> str | None:
    """ "our account is Contoso, number 12345" -> "Contoso (12345)"; "12345" -> "12345"; "" -> None."""
    v = " ".join(value.split()).strip(" .!")
    v = _ACCOUNT_PREFIX.sub("", v, count=1)
    number = None
    m = _NUMBER.search(v)
    if m:
        number = m.group(1)
        v = (v[: m.start()] + " " + v[m.end() :]).strip()
    v = re.sub(r"\b(?:account|acct|number|no\.?|name|id|is|and|with|cato)\b", " ", v, flags=re.IGNORECASE)
    name = " ".join(v.replace("()", " ").split()).strip(" ,.;:/()#-")
    if name and number:
        return f"{name} ({number})"[:120]
    either = name or number
    return either[:120] if either else None


def account_in(plain: str) -> str | None:
    m = _ACCOUNT_IN_TEXT.search(plain)
    return normalise_account(m.group(1)) if m else None
