"""Identities and names built in one place (keys.py): agent keys and their names, and the original Power Mode's Redis
layout, which outside tools read."""

from __future__ import annotations

from popkit_power import keys
from popkit_power.protocol import CHANNELS


def test_agent_keys_and_their_names() -> None:
    assert keys.agent_key("c0ffee00-11") == "c0ffee00-11:main"
    assert keys.agent_key("c0ffee00-11", "a1b2c3d4") == "c0ffee00-11:a1b2c3d4"
    assert keys.split_agent_key("c0ffee00-11:a1b2c3d4") == ("c0ffee00-11", "a1b2c3d4")
    assert keys.agent_name("c0ffee00-11:main") == "main-c0ffee"
    assert keys.agent_name("c0ffee00-11:a1b2c3d4", "Explore") == "Explore-a1b2c3"
    assert keys.agent_name("human") == "human"
    assert keys.subagent_task("a1b2c3d4") == "agent-a1b2c3d4"
    assert len(keys.new_request_id()) == 12 and keys.new_id() != keys.new_id()


def test_the_redis_layout_of_the_original_power_mode() -> None:
    """The six channel streams and the keys its README documents, spelled exactly so."""
    layout = keys.RedisLayout()
    assert [layout.channel_stream(channel) for channel in CHANNELS] == [
        "pop:broadcast", "pop:heartbeat", "pop:results", "pop:insights", "pop:coordinator", "pop:human"]
    assert (layout.objective, layout.orphaned_tasks, layout.coordinator_status) == (
        "pop:objective", "pop:tasks:orphaned", "pop:coordinator:status")
    assert layout.agent_state("a1") == "pop:state:a1"
    assert layout.completed("s1") == "pop:completed:s1"
    assert layout.pattern("p1") == "pop:patterns:p1"
    other = keys.RedisLayout("team-b")  # several projects share one database under their own prefixes
    assert (other.channel_stream("broadcast"), other.objective, other.origin_stream("s1", "m1")) == (
        "team-b:broadcast", "team-b:objective", "team-b:journal:s1:m1")
