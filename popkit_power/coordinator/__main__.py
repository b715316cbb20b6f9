"""`python -m popkit_power.coordinator`: the session's coordinator in the foreground, as `popkit-power start` runs it
as a daemon (daemon.py), without going through the CLI."""

import sys

from .daemon import main

sys.exit(main())
