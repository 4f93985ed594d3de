"""`python -m bot.rasa_entry run …`: Rasa's own command line, with the API token kept secret.

``rasa run --auth-token=…`` puts the token on the command line, where ``ps`` shows it to every
user of the machine. This entry point takes it from ``RASA_TOKEN`` in the environment instead
(and removes it from there), hands it to Rasa inside the process (the argument list a process
was started with, which ``ps`` reads, is not changed by rewriting ``sys.argv``), and lets Rasa
accept it in the ``X-Rasa-Token`` header, so it never appears in a URL or an access log. The
``?token=`` query parameter keeps working for tools that use it.
"""

from __future__ import annotations

import hmac
import os
import sys
from collections.abc import Callable
from functools import wraps
from inspect import isawaitable
from typing import Any

TOKEN_HEADER = "X-Rasa-Token"


def _header_auth(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps ``rasa.server.requires_auth``: a request with the right header passes; without
    the header Rasa's own check (query token, JWT) decides; a wrong header is refused."""

    def requires_auth(app: Any, token: str | None = None) -> Callable[[Any], Any]:
        rasa_check = original(app, token)

        def decorator(handler: Any) -> Any:
            checked = rasa_check(handler)

            @wraps(handler)
            async def decorated(request: Any, *args: Any, **kwargs: Any) -> Any:
                sent = request.headers.get(TOKEN_HEADER)
                if sent is not None and token:
                    if hmac.compare_digest(sent.encode("utf-8"), token.encode("utf-8")):
                        result = handler(request, *args, **kwargs)
                        return await result if isawaitable(result) else result
                    from rasa.server import ErrorResponse

                    raise ErrorResponse(401, "NotAuthenticated", "User is not authenticated.")
                return await checked(request, *args, **kwargs)

            return decorated

        return decorator

    return requires_auth


def main() -> None:
    token = os.environ.pop("RASA_TOKEN", "")
    if not token:
        sys.exit("RASA_TOKEN is empty: Rasa's HTTP API must not run without a token")
    import rasa.server

    rasa.server.requires_auth = _header_auth(rasa.server.requires_auth)
    # "=" form: a token starting with "-" must not be read as an option
    sys.argv = ["rasa", *sys.argv[1:], f"--auth-token={token}"]
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
