"""The reader's own phrase material: how a reply says "it works now", "still broken", "where is that?",
"that's the wrong IdP", how commands stand inside longer messages, which words name an IdP or an attribute.

Written from how people talk in chat, not from the evaluation corpus (knowledge/corpus/ is for training and
measuring the learned models, never copied here). The pack's own lexicon (knowledge/lexicon.yaml: yes, no,
unsure, skip, commands) is used alongside; these patterns add what a lexicon of single words cannot say.
All patterns run on normalised (lower-case, markup-free) text and are bounded.
"""

from __future__ import annotations

import re


def _rx(*parts: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in parts))


# ---- commands that count anywhere in a message ------------------------------------------------------
# Short messages that are only a command use the pack's lexicon (bot/answers.py). These phrases are
# specific enough to be honoured inside a longer message ("... anyway, can I talk to a human?").
_WHO = r"(?:a |an |some |the |)(?:human|person|real person|real human|someone|somebody|engineer|agent|support|support engineer|cato support|tech|technician|people)"
COMMANDS_ANYWHERE: dict[str, re.Pattern[str]] = {
    "escalate": _rx(
        rf"\b(?:talk|speak|chat) (?:to|with) {_WHO}\b",
        r"\b(?:get|give|put) me (?:through to |in touch with |to )?(?:a |an )?(?:human|person|real person|engineer|agent)\b",
        r"\breal (?:person|human)\b",
        r"\bhuman(?:,)? (?:please|pls|plz)\b",
        r"\bescalate (?:this|it|me|to (?:cato )?support|to cato|to a human)\b",
        r"\bhand (?:this|it|me) (?:over )?to (?:cato )?support\b",
        r"\bconnect me (?:to|with) (?:cato )?(?:support|a human|someone)\b",
        r"\b(?:open|raise|create|file|log|submit) (?:a |the |)(?:support |cato |cato support )?(?:ticket|case)\b",
    ),
    "restart": _rx(
        r"\bstart (?:over|again|afresh|from scratch)\b",
        r"\bbegin again\b",
        r"\b(?:reset|restart) (?:the |this )?(?:conversation|chat)\b",
        r"^(?:please |pls |ok |okay |can we |let'?s )?(?:restart|reset)\b(?! (?:the )?(?:provisioning|sync|job|cycle|service|app))",
    ),
    "ticket": _rx(r"\bshow (?:me )?(?:the |my |our )?(?:draft )?ticket\b", r"\bsee (?:the |my )?(?:draft )?ticket\b"),
    "help": _rx(r"\bwhat can you do\b", r"\bhow do(?:es)? (?:you|this bot) work\b"),
    "cancel": _rx(r"\bcancel (?:this|that|the conversation)\b", r"\bforget (?:it|about it)\b"),
}
# Substrings without which a command pattern cannot match (a cheap test before the regular expression).
COMMAND_KEYS: dict[str, tuple[str, ...]] = {
    "escalate": ("talk", "speak", "chat", " me ", "real ", "human", "escalat", "hand ", "connect", "ticket", "case", "support", "cato", "someone", "somebody", "person", "engineer"),
    "restart": ("start", "begin", "reset", "restart"),
    "ticket": ("ticket",),
    "help": ("what can you", "how do"),
    "cancel": ("cancel", "forget"),
}
# Words just before a command phrase that turn it into something else ("before I open a case", "I don't
# want to talk to a human").
COMMAND_NEGATED = re.compile(
    r"(?:\b(?:don'?t|do not|not|never|before|without|instead of|rather than|no need to|won'?t|already|should i|do i need to|do we need to|have to|whether to|if i should|if we should)\W+(?:\w+\W+){0,2})$"
)

# ---- acts -----------------------------------------------------------------------------------------------

FIXED = _rx(
    r"\b(?:that|this|it) (?:was it|did it|did the trick|fixed it|solved it|sorted it|worked)\b",
    r"\b(?:that|this)(?:'s| is| was) it\b",
    r"\b(?:works|working|fixed|resolved|sorted|solved|good|fine) now\b",
    r"\bnow (?:it )?(?:works|it'?s working|they (?:show|appear|sync))\b",
    r"\b(?:it'?s|its|it is|all|everything'?s?|everything is|they'?re|they are) (?:working|fixed|resolved|sorted|good|fine)(?: again| now)\b",
    r"\b(?:users|they|people|everyone|accounts|the users|the missing users|new hires|all of them) (?:are |have |)(?:now |finally |)(?:coming (?:in|through|over|across)|showing up|showed up|appearing|appeared|syncing|synced|flowing|arriving|arrived|landing|landed|there)(?: now)?\b",
    r"\b(?:problem|issue)(?:'s| is| was| has been|) (?:solved|resolved|gone|fixed|sorted)\b",
    r"\bback to normal\b",
    r"\b(?:that |it |)(?:fixed|resolved|solved) (?:it|the (?:issue|problem))\b",
    r"^(?:yes|yep|yeah|yup|yes!)[ ,.!]*(?:it |that |)(?:did|works|worked|fixed|helped)\b",
    r"^(?:fixed|resolved|solved|sorted|working)[.! ]*(?:thanks|thank you|thx|ty|cheers)?[.! ]*$",
)
STILL_BROKEN = _rx(
    r"\bstill (?:broken|not|nothing|no |the same|same|missing|failing|fails|empty|blank|getting|shows|showing|says|seeing|stuck|doesn'?t|don'?t|isn'?t|aren'?t|can'?t|cannot|won'?t|zero|none|old)",
    r"\b(?:didn'?t|did not|doesn'?t|does not|hasn'?t|has not|haven'?t|have not) (?:help|work|fix|change|do anything|make a difference|solve)",
    r"\bno (?:change|difference|luck|joy|improvement)\b",
    r"\bsame (?:problem|issue|error|thing|result|story|as before)\b",
    r"\bnot (?:fixed|resolved|solved|working)\b",
    r"\bnothing (?:changed|happened|new)\b",
    r"\bstill\b.{0,30}\b(?:not|no|nothing|missing|error|fail)",
)
COMPLAINT = _rx(
    r"\bi (?:said|told you|mentioned|wrote|already said|already told you|specifically said)\b",
    r"\b(?:there is|there's|theres|there are) no (?:such |)(?:\w+ ){0,2}(?:menu|tab|button|option|page|section|setting|blade|screen|field|link|item|filter)s?\b",
    r"\bno such (?:menu|tab|button|option|page|thing|setting|section|blade|screen|field|place)\b",
    r"\b(?:those|these|that|the|your) (?:steps|instructions|menus?|paths?|screens?|directions) (?:are|is|were|was) (?:for|from|about) ",
    r"\bwrong (?:idp|identity provider|product|menu|steps|instructions|console|screen|app|vendor|one)\b",
    r"\b(?:doesn'?t|does not|don'?t|do not) (?:exist|have (?:that|this|a|an|any|such) (?:\w+ )?(?:menu|tab|button|option|page|section|setting|blade))\b",
    r"\bnot what i (?:said|asked|meant|wrote)\b",
    r"\b(?:we|i) (?:don'?t|do not|never) use (?:entra|azure|okta|onelogin|one login|aad)\b",
    r"\bwe(?:'re| are) (?:on|using) \w+(?: \w+)?,? not \w+",
    r"\bthat'?s (?:wrong|not right|not correct|incorrect|not it|not true)\b",
    r"\b(?:useless|not helpful|unhelpful|you'?re not listening|you are not listening|are you even|makes no sense|doesn'?t make sense)\b",
    r"\b(?:not|isn'?t) (?:entra|azure|okta|onelogin)\b",
)
# A question about the step: where is it, what does it mean, do I need a role. Only counts when the
# message reads as a question (a "?" or a question word first).
QUESTION_START = re.compile(
    r"^(?:(?:hmm+|um+|uh+|ok(?:ay)?|so|wait|sorry|and|but|quick question|q|also|hi|hey)[,.!: ]+)*"
    r"(?:where|what|whats|what's|which|how|why|when|who|is (?:that|it|this|there)|are (?:those|these|they|there)|do (?:i|we|you)|does|did (?:you|i)|can (?:i|we|you)|could (?:i|we|you)|should (?:i|we)|would|will|am i|huh)\b"
)
QUESTION_ANYWHERE = _rx(
    r"\bwhere (?:exactly |do i|is (?:that|it|this)|can i|would i|should i|are (?:those|these|they)|do you mean|would that be|is the)\b",
    r"\bwhat (?:does|do you mean|is (?:that|this|a|an|the)|are (?:those|these)|exactly|should i)\b",
    r"\bhow do i (?:get|find|open|check|see|do)\b",
    r"\bdo (?:i|we) need (?:to be|a|an|the|admin|global|super)\b",
    r"\bwhich (?:one|menu|tab|page|screen|filter|app|role)\b",
    r"\bnot sure (?:where|what|how|which)\b",
    r"\bi (?:don'?t|do not) (?:understand|get it|follow)\b",
)
# Replies meaning "I don't have that / leave it out" where a ticket field is asked.
SKIP = re.compile(
    r"^(?:(?:skip(?: (?:it|this|that))?|n/?a|na|none|nope|no(?: one| groups?| upns?| users?|body)?|nobody|nothing|not sure|unsure|don'?t know|do not know|dunno|no idea|idk|not applicable|pass|later|not (?:yet|now)|-+|n\.a\.|none yet|unknown|can'?t say|no clue)\b|-+$)"
)
SKIP_ANYWHERE = _rx(r"\bnobody (?:has been |was |)provisioned\b", r"\bno (?:one|users?) (?:has been |have been |was |were |is |)provisioned\b", r"\bnone (?:yet|at all)\b")

# ---- entities -----------------------------------------------------------------------------------------

# IdPs admins name that the pack files under "other" (the pack's own aliases come first).
OTHER_IDPS = [
    "jumpcloud", "jump cloud", "google workspace", "g suite", "gsuite", "google", "ping identity", "pingone", "ping one",
    "pingfederate", "ping federate", "ping", "auth0", "duo", "keycloak", "rippling", "cyberark", "forgerock", "authentik",
    "workspace one", "centrify", "idaptive", "personio", "bamboohr", "hibob",
]
# "I said onelogin", "we use Okta": the IdP the admin insists on wins over others mentioned.
IDP_ASSERTED = re.compile(r"\b(?:i said|i told you|i mentioned|we use|we are on|we're on|we're using|we are using|we have|it'?s|it is|this is|our idp is|idp is|using)\s+$")

# Attributes admins name, to the canonical name kept in Entities.attribute.
ATTRIBUTES: dict[str, list[str]] = {
    "email": ["email", "e-mail", "mail", "email address", "e-mail address", "mail attribute", "primary email", "work email"],
    "upn": ["upn", "userprincipalname", "user principal name", "username", "user name", "login name"],
    "first name": ["first name", "firstname", "given name", "givenname", "forename"],
    "last name": ["last name", "lastname", "surname", "family name", "familyname"],
    "phone": ["phone", "phone number", "mobile", "mobile number", "telephone", "telephonenumber", "cell", "mobilephone"],
    "display name": ["display name", "displayname"],
    "department": ["department", "dept", "departments"],
    "job title": ["job title", "jobtitle", "title"],
    "manager": ["manager"],
    "office": ["office", "office location", "officelocation"],
    "location": ["location", "city", "country", "address", "street"],
    "company": ["company", "company name", "companyname"],
    "cost center": ["cost center", "cost centre", "costcenter"],
    "employee id": ["employee id", "employeeid", "employee number"],
    "employee type": ["employee type", "employeetype"],
    "division": ["division"],
}
# The answer ids of "Which attribute did you change?" that an attribute maps onto; the rest are "other".
ATTRIBUTE_OPTION = {"email": "email", "upn": "upn", "first name": "first-name", "last name": "last-name", "phone": "phone"}

# Words that are not a group's name in "the X group".
GROUP_NOT_NAMES = {
    "a", "an", "the", "that", "this", "these", "those", "assigned", "parent", "nested", "child", "sub", "whole", "same", "new",
    "security", "entire", "one", "user", "users", "scim", "cato", "our", "my", "your", "which", "each", "every", "any",
    "another", "other", "dynamic", "target", "some", "m365", "ad", "azure", "entra", "okta", "onelogin", "office", "big",
    "main", "top", "outer", "inner", "second", "first", "right", "wrong", "correct", "old", "his", "her", "their", "its",
    "what", "no", "in", "of", "to", "from", "and", "or", "app", "application", "member", "members", "mail", "distribution",
    "pushed", "push", "missing", "affected", "relevant", "specific", "certain", "single", "only", "all", "both", "unified", "microsoft", "google", "synced", "scoped", "is", "was", "be", "for", "by", "with", "on", "at", "as",
}
