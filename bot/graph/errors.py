"""Why looking at Graph failed, in a form the Looker turns into one honest line for the admin."""

from __future__ import annotations

from typing import Literal

Kind = Literal["unauthorized", "forbidden", "not-found", "throttled", "timeout", "unreachable", "bad-response", "token"]


class GraphError(Exception):
    """A Graph or token call that did not give an answer. `detail` is short and safe to show: never a
    token, a secret or a response body."""

    def __init__(
        self,
        kind: Kind,
        call: str,
        detail: str = "",
        status: int | None = None,
        permission: str | None = None,
        retry_after: float | None = None,
    ):
        self.kind = kind
        self.call = call
        self.detail = detail
        self.status = status
        self.permission = permission
        self.retry_after = retry_after
        super().__init__(f"{call}: {kind}" + (f" ({status})" if status else "") + (f": {detail}" if detail else ""))
