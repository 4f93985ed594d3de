"""`python -m bot.rasa_entry run …`: Rasa's own command line, with the API token kept secret.

``rasa run --auth-token=…`` puts the token on the command line, where ``ps`` shows it to every
user of the machine. This entry point takes it from ``RASA_TOKEN`` in the environment instead
(and removes it from there), hands it to Rasa inside the process (the argument list a process
was started with, which ``ps`` reads, is not changed by rewriting ``sys.argv``), and lets Rasa
accept it in the ``X-Rasa-Token`` header, so it never appears in a URL or an access log. The
``?token=`` query parameter keeps working for tools that use it.

It also lets the hub send a turn's preparation with the message itself
(``_events_from_metadata``): without it, starting a new Rasa session or changing the
``language`` slot cost the hub one more request per turn (Rasa loads and saves the tracker
for each), about a quarter of the hub's overhead in `make bench` (issue 14).
"""

from __future__ import annotations

import hmac
import os
import sys
import time
from collections.abc import Callable
from functools import wraps
from inspect import isawaitable
from typing import Any

TOKEN_HEADER = "X-Rasa-Token"
# message metadata key: tracker events (session start, slots) to apply before the message
HUB_EVENTS_KEY = "hub_events"


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


def _events_from_metadata(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps ``MessageProcessor._update_tracker_session``, which Rasa runs for every incoming
    message on the freshly loaded tracker (under the conversation's lock, before NLU): the
    events the hub put under ``HUB_EVENTS_KEY`` in the message's metadata are applied first,
    exactly as ``POST /conversations/<id>/tracker/events`` would have applied them (a session
    start given by the hub replaces Rasa's own; slots alone go after Rasa's first session
    start of an empty tracker), then Rasa's own check runs. The key is removed from the
    metadata, so the stored user message carries the same metadata as before."""

    async def update_tracker_session(self: Any, tracker: Any, output_channel: Any,
                                     metadata: dict[str, Any] | None = None) -> None:
        raw = metadata.pop(HUB_EVENTS_KEY, None) if isinstance(metadata, dict) else None
        if raw and isinstance(raw, list):
            from rasa.shared.core.events import Event, do_events_begin_with_session_start

            # stamped now and in order: the SQL tracker store replays events by timestamp,
            # and Rasa stamps the user message after these
            now, events = time.time(), []
            for i, params in enumerate(raw):
                try:
                    event = (Event.from_parameters({**params, "timestamp": now + i * 1e-6})
                             if isinstance(params, dict) else None)
                except (ValueError, KeyError, TypeError):  # not an event: the hub sends none
                    event = None
                if event:
                    events.append(event)
            if not tracker.events and not do_events_begin_with_session_start(events):
                await original(self, tracker, output_channel, metadata)
            for event in events:
                tracker.update(event, self.domain)
        await original(self, tracker, output_channel, metadata)

    return update_tracker_session


def main() -> None:
    token = os.environ.pop("RASA_TOKEN", "")
    if not token:
        sys.exit("RASA_TOKEN is empty: Rasa's HTTP API must not run without a token")
    import rasa.server

    rasa.server.requires_auth = _header_auth(rasa.server.requires_auth)
    from rasa.core.processor import MessageProcessor

    MessageProcessor._update_tracker_session = _events_from_metadata(
        MessageProcessor._update_tracker_session)
    # "=" form: a token starting with "-" must not be read as an option
    sys.argv = ["rasa", *sys.argv[1:], f"--auth-token={token}"]
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
