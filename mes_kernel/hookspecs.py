"""The plugin contract: every hook a plugin may implement, each documented by its docstring.

Plugins are found through the ``mes_kernel.plugins`` entry-point group. A plugin module (or object)
implements any subset of these hooks with ``@mes_kernel.hookimpl``. Hooks return data; the kernel
mounts it. Hooks only ever gain arguments, never lose them: implement only the arguments you use.

Every hook may be written as ``async def``; the kernel awaits what it gets back (pluggy itself is
synchronous). The plugin author's guide (``docs/plugin-guide.md``) has a section for each hook.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("mes_kernel")


# ---------------------------------------------------------------- routes


@hookspec
def mes_register_routers(kernel):
    """Return FastAPI routers that the kernel mounts under ``/api/v1``.

    :param kernel: the running :class:`mes_kernel.kernel.Kernel` (settings, database, cache,
        breakers, drivers, traceability).
    :return: a list of ``fastapi.APIRouter``. Each router should carry a ``prefix`` and ``tags``;
        its routes appear in ``/docs`` and in ``GET /api/v1/plugins`` under this plugin. The kernel
        mounts each behind its scope dependency: 403 ``PLUGIN_DISABLED`` while the plugin is switched
        off, 403 ``PLUGIN_NOT_ENABLED`` to a station whose line does not enable the plugin.
    """


@hookspec
def mes_register_permissions():
    """Return the permissions this plugin's routes check, and which roles get them by default.

    :return: a list of :class:`mes_kernel.contracts.Permission`. The kernel merges them into its
        permission table; ``require_permission("labels:print")`` then works in the plugin's routes.
        The ``admin`` role always receives every permission.
    """


# ---------------------------------------------------------------- devices


@hookspec
def mes_register_device_kinds():
    """Return the device kinds whose drivers this plugin owns.

    :return: a list of :class:`mes_kernel.contracts.DeviceKind` (kind name, stevedore namespace,
        driver base class). Drivers themselves are registered as entry points in that namespace,
        by this plugin or by any third-party package, and are loaded by name with
        :func:`mes_kernel.drivers.load_driver`.
    """


@hookspec
def mes_register_breakers():
    """Return circuit-breaker configurations for this plugin's device actions.

    :return: a list of :class:`mes_kernel.contracts.BreakerConfig` (name, failure threshold,
        recovery timeout, which exceptions count). Lines may override the numbers in their
        configuration. The plugin calls devices through ``kernel.breakers.call(name, instance, fn,
        line=...)``; without ``line``, the line of the station being served applies.
    """


# ---------------------------------------------------------------- health


@hookspec
def mes_register_health_checks(kernel):
    """Return health checks that ``GET /api/v1/health`` runs with the kernel's own.

    :param kernel: the running kernel.
    :return: a list of :class:`mes_kernel.contracts.HealthCheck`. Each check is an async callable
        returning a :class:`mes_kernel.contracts.CheckResult`; it runs concurrently with the others
        under its own timeout. A check that raises or times out is reported DOWN with the reason.
        Only checks marked ``critical`` can turn the endpoint's answer into 503. Checks of a
        plugin that is disabled, failed or enabled on no line are not run; a check covers the lines
        ``kernel.enabled_lines(plugin_name)`` names.
    """


# ---------------------------------------------------------------- dashboard


@hookspec
def mes_register_panels():
    """Return dashboard panels the web shell renders, declaratively (no JavaScript shipped).

    :return: a list of :class:`mes_kernel.contracts.Panel` (id, title, kind — ``stat``,
        ``timeseries``, ``bar`` or ``table`` — data endpoint, the path ``/api/v1/...`` of one of the
        plugin's routes, and refresh interval). They are listed by ``GET /api/v1/dashboard/panels``
        while the plugin is active and enabled on a line.
    """


# ---------------------------------------------------------------- command line


@hookspec
def mes_register_commands():
    """Return command groups added to the ``mes`` command line.

    :return: a list of ``(name, typer.Typer)`` pairs; each becomes ``mes NAME ...``.
    """


# ---------------------------------------------------------------- demo


@hookspec
def mes_demo_devices(settings, units):
    """Start this plugin's device simulators for the demo line and describe the devices on it.

    Called only by ``mes serve --demo`` (the README's run command), in the server's process,
    before it listens; simulators should run in daemon threads on 127.0.0.1.

    :param settings: the kernel :class:`mes_kernel.settings.Settings`.
    :param units: the serial numbers of the demo LOT's units (``SN-DEMO-0001`` …), registered by the
        time the server listens. A simulated machine that reports the serial number of the part it
        works on should work these, so a unit's history shows what the machine recorded.
    :return: a list of device dicts shaped like a line file's ``[[devices]]`` entries (``code``,
        ``kind``, ``driver``, ``config``); the kernel puts them on line ``DEMO`` at station ``ST-DEMO``.
    """


# ---------------------------------------------------------------- lifecycle


@hookspec
def mes_startup(kernel):
    """Do start-up work after the database is reachable and before the first request.

    Runs in every worker process, only for a plugin that is switched on: a plugin an administrator
    switched off (``POST /api/v1/plugins/{name}/disable``, stored in the database) is not started,
    and its ``mes_startup`` runs when it is switched on again, without a restart. It may therefore
    run again after a ``mes_shutdown`` in the same process.

    :param kernel: the running kernel.
    :return: ignored. May be ``async``. An exception here marks the plugin *failed* (with the
        reason) and unregisters it; the kernel keeps starting.
    """


@hookspec
def mes_shutdown(kernel):
    """Release what ``mes_startup`` acquired (connections, tasks, background work) when the kernel
    stops, and when an administrator switches the plugin off at run time (each worker process,
    within the configuration's follow time). Runs only after the plugin's ``mes_startup`` ran.

    :param kernel: the running kernel.
    :return: ignored. May be ``async``. Exceptions are logged and do not stop other plugins.
    """
