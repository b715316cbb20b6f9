"""`projector.Folding`: the cyclic garbage collector is off during a fold and as it was afterwards."""

from __future__ import annotations

import gc

import pytest

from popkit_power.projector import Folding, project


def test_the_collector_is_off_during_a_fold_and_on_again_after() -> None:
    seen: list[bool] = []

    def events():  # type: ignore[no-untyped-def]
        seen.append(gc.isenabled())
        yield {"seq": 1, "type": "agent.idle", "from": "a", "data": {}}

    assert gc.isenabled()
    state = project(events())
    assert seen == [False]
    assert gc.isenabled()
    assert state["agents"]["a"]["status"] == "idle"


def test_a_collector_off_before_stays_off_and_an_error_still_turns_it_on() -> None:
    gc.disable()
    try:
        with Folding():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(RuntimeError), Folding():
        raise RuntimeError("a fold that fails")
    assert gc.isenabled()
