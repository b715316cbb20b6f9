"""`python -m popkit_power.cli`: the `popkit-power` command (how `start` launches the coordinator daemon)."""

from . import main

main()
