"""The scale profile's layout and balancer config, read from settings (no process started):
how many action servers, on which ports, and the balancer section that puts them behind
one address for the Rasa servers."""

from __future__ import annotations

import pytest

from bot.core.config import Settings
from bot.scale import haproxy
from bot.scale.layout import LayoutError, ScaleLayout

PG = "postgresql://postgres@127.0.0.1:5432/postventa_scale"


def _layout(**env: str) -> ScaleLayout:
    values = {"SCALE_DATABASE_URL": PG, **env}
    return ScaleLayout.from_env(Settings(hub_port=8000),
                                lambda name, default: values.get(name) or default)


def test_two_action_servers_by_default_on_the_ports_after_action_port():
    lay = _layout(ACTION_PORT="6000")
    assert lay.action_port == 6000
    assert lay.actions == [("actions-1", 6001), ("actions-2", 6002)]


def test_action_replicas_and_explicit_ports():
    assert _layout(ACTION_REPLICAS="3", ACTION_PORT="6000").action_ports == (6001, 6002, 6003)
    assert _layout(SCALE_ACTION_PORTS="7100,7200").action_names == ["actions-1", "actions-2"]


@pytest.mark.parametrize("env, named", [
    ({"ACTION_REPLICAS": "0"}, "ACTION_REPLICAS must be between 1 and 16"),
    ({"ACTION_REPLICAS": "two"}, "ACTION_REPLICAS must be a number"),
    ({"SCALE_ACTION_PORTS": "7100,x"}, "SCALE_ACTION_PORTS must be a comma-separated list"),
    ({"SCALE_ACTION_PORTS": "7100", "ACTION_REPLICAS": "2"}, "lists 1 ports but"),
    # an action server on the port the balancer keeps for the Rasa servers
    ({"ACTION_PORT": "6000", "SCALE_ACTION_PORTS": "6000,6001"}, "SCALE_ACTION_PORTS"),
    # on a Rasa server's port
    ({"RASA_PORT": "5005", "SCALE_ACTION_PORTS": "5006,7000"}, "ports overlap"),
])
def test_bad_action_settings_are_refused_with_the_setting_named(env, named):
    with pytest.raises(LayoutError, match=named):
        _layout(**env)


def test_the_balancer_puts_the_action_servers_behind_one_loopback_address():
    config = haproxy.render("0.0.0.0", 8000, [("hub-1", 8001)], maxconn=1000,
                            actions=[("actions-1", 6001), ("actions-2", 6002)],
                            action_port=6000)
    front = config.split("frontend actions_in", 1)[1]
    assert "bind 127.0.0.1:6000" in front.split("backend actions", 1)[0]
    backend = config.split("backend actions\n", 1)[1]
    assert "server actions-1 127.0.0.1:6001 check" in backend
    assert "server actions-2 127.0.0.1:6002 check" in backend
    assert "uri /health" in backend
    # only a call that never connected may go to another action server: one that reached
    # an action server may have written a case
    assert "retry-on conn-failure\n" in backend and "option redispatch" in backend
    # without action servers (older callers) the section is absent
    assert "actions_in" not in haproxy.render("0.0.0.0", 8000, [("hub-1", 8001)], maxconn=10)
