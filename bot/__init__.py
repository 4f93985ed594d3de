"""Postventa assistant: hub, services, database and command line.

The package never imports Rasa; the custom actions in ``actions/`` call into it.
"""

__version__ = "0.1.0"
