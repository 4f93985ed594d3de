"""`python -m bot …` — the product's command line."""

import sys

from bot.cli.main import main

sys.exit(main())
