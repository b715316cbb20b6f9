"""`python -m popkit_power.cli`: the `popkit-power` command (how the demo's agents run it)."""

from . import main

main()
