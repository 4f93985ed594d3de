"""Custom actions. Thin by design: they read the tracker, call ``bot`` services and reply.

Rasa SDK discovers every ``Action`` subclass in the modules imported here.
"""

from actions import fallback, faq, greeting, language  # noqa: F401
