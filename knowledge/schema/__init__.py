"""The shape of a knowledge pack, and the checks that make a pack safe to walk.

A pack is data, never code: a manifest YAML file (IdPs, symptoms, topics, checks, causes, errors,
escalation) that names three companion files — the classifier's matching material, the answer lexicon and
the messages (every sentence the engine itself says). `knowledge.loader.load_pack()` reads them, keeps a
line number for every node, and raises `KnowledgeError` naming file, line and path whenever the data is
malformed (pydantic) or inconsistent (the graph and wording checks below).

Per-IdP wording. Every text an admin reads may be written once, IdP-neutral:

    ask: Is the user's E-mail field empty?

or once per IdP of the pack, as a mapping with every IdP id as key:

    ask:
      entra: In the Microsoft Entra admin center, open Enterprise applications > … > Users and groups. …
      okta: In the Okta Admin Console, open the Cato app's Assignments tab. …
      onelogin: In OneLogin, open the Cato app's Users tab. …
      other: In your IdP's provisioning settings, open the app's assignments. …

The pack's generic IdP (`generic_idp`, default `other`) holds the wording for an IdP we have no console
words for; it names no vendor's menus. Display code never reads such a field directly: it asks
`Bundle.word(value, idp)` (and `Bundle.steps` / `Bundle.notes` for lists), which picks the IdP's own
wording, or the generic one when the IdP is not known yet. For code written before per-IdP wording, a
mapping is a `str` (an `IdPText`) whose value is the generic wording, so it never shows one vendor's
console to another vendor's admin.

Console ownership. Each IdP lists `console_terms`: labels only its console uses ("Provision on demand",
"Test API Credentials", "Require admin approval"). `wording_problems()` refuses a text that an admin of
one IdP could be shown while it carries another IdP's console terms, and a mapping that lacks an IdP.
Which IdPs can see a text: everyone, unless the item it belongs to is scoped with `idps:` (a check, cause
or topic only some consoles have) or `idp:` (an error string only one console prints); a plain string
scoped to one IdP may use that IdP's terms.

Graph rules enforced here, so the engine may assume them:
- ids are unique kebab-case within their kind; every reference resolves;
- every check used by a flow (symptom or topic) only confirms, rules out or boosts causes that flow lists;
- every answer of a check leads somewhere: it confirms a cause, rules causes out, shifts their weights,
  or is an explicit "unsure" (the engine moves to the next check);
- every cause is reachable: some flow lists it, and a check of that flow, an error of the catalogue, or
  the flow being a topic with that single cause confirms it;
- every error of the catalogue points at exactly one cause or topic;
- facts beyond the playbook (`source: reference`) carry their `sources`;
- messages define every id the engine needs (`MESSAGE_SLOTS`) with only the placeholders it fills.

The package, by room: `base` (ids, text types, `Strict`, `Problem`), `worded` (per-IdP wording),
`models` (IdPs, checks, causes, flows, errors, escalation), `messages` (slots and placeholders),
`material` (classifier material, lexicon), `pack` (`Pack`, `Bundle`, `iter_texts`), `graph_checks` and
`wording_checks`. Import from `knowledge.schema`: every name below is re-exported here.
"""

from knowledge.schema.base import (
    GENERIC_IDP,
    Id,
    MessageId,
    Path,
    Problem,
    Strict,
    Text,
    squash,
)
from knowledge.schema.graph_checks import (
    classifier_problems,
    graph_problems,
)
from knowledge.schema.material import (
    CLASSIFIER_THRESHOLDS,
    ClassifierMaterial,
    Cue,
    Lexicon,
    SymptomMaterial,
)
from knowledge.schema.messages import (
    MESSAGE_SLOTS,
    Messages,
    placeholders,
)
from knowledge.schema.models import (
    Answer,
    Cause,
    Check,
    ErrorEntry,
    Escalation,
    Flow,
    IdP,
    Resolution,
    Setting,
    Signature,
    Source,
    Step,
    Symptom,
    TicketField,
    Topic,
    WeightedCause,
    WordedSteps,
    resolve_steps,
)
from knowledge.schema.pack import (
    Bundle,
    Pack,
    iter_texts,
)
from knowledge.schema.worded import (
    TAG_PARTS,
    IdPList,
    IdPText,
    Worded,
    WordedPath,
    WordedTexts,
)
from knowledge.schema.wording_checks import (
    message_problems,
    wording_problems,
)

__all__ = [
    "Answer",
    "Bundle",
    "CLASSIFIER_THRESHOLDS",
    "Cause",
    "Check",
    "Setting",
    "ClassifierMaterial",
    "Cue",
    "ErrorEntry",
    "Escalation",
    "Flow",
    "GENERIC_IDP",
    "Id",
    "IdP",
    "IdPList",
    "IdPText",
    "Lexicon",
    "MESSAGE_SLOTS",
    "MessageId",
    "Messages",
    "Pack",
    "Path",
    "Problem",
    "Resolution",
    "Signature",
    "Source",
    "Step",
    "Strict",
    "Symptom",
    "SymptomMaterial",
    "TAG_PARTS",
    "Text",
    "TicketField",
    "Topic",
    "WeightedCause",
    "Worded",
    "WordedPath",
    "WordedSteps",
    "WordedTexts",
    "classifier_problems",
    "graph_problems",
    "iter_texts",
    "message_problems",
    "placeholders",
    "resolve_steps",
    "squash",
    "wording_problems",
]
