"""Optional, read-only Microsoft Graph connection: Entra checks answered by looking, not asking.

`Looker` (looker.py) is the engine's hook; `GraphClient` (client.py) makes exactly the Graph v1.0 calls
issue #16 lists; `TokenSource` (token.py) gets app-only tokens through MSAL; `facts.py` turns Graph's
answers into the facts knowledge/probes.yaml reasons over; `check.py` is `scim-help graph check`.
"""

from bot.graph.looker import Look, Looker

__all__ = ["Look", "Looker"]
