"""A command-line kernel (``mes line apply``, ``create_app(server=False)``) runs no connector: it must
not connect to the machines, take an MQTT client id from the server, or write machine data."""

from __future__ import annotations

from opcua_helpers import opcua_device

from mes_kernel.app import create_app
from mes_kernel.testing.helpers import put_line


async def test_a_command_line_kernel_starts_no_connector(client, settings, admin_headers, machine):
    await put_line(client, admin_headers, "LINE-O", [opcua_device("MC-1", machine.endpoint)])
    cli = create_app(settings, server=False)
    async with cli.router.lifespan_context(cli):
        state = cli.state.kernel.state
        assert state.get("serving") is False
        for key in ("opcua_connectors", "modbus_connectors", "mqtt_connectors"):
            fleet = state.get(key)  # a connector plugin's fleet, if it made one, never started
            assert fleet is None or (fleet.task is None and not fleet.connectors), key
