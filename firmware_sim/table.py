"""The simulator's live table (rich): residents, devices, radio and link, battery, last values.

:func:`render` is a pure function of a :class:`~firmware_sim.runtime.RuntimeStatus`;
:func:`show_live` redraws it on a console until cancelled. The table is for a person at a
terminal (``__main__`` shows it only when stdout is one): it shows names and values, which
the logs never do at INFO.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Final

from rich.console import Console
from rich.live import Live
from rich.table import Table

from firmware_sim.firmware import RadioState
from firmware_sim.peripheral import PeripheralStatus
from firmware_sim.runtime import RuntimeStatus
from vitals.metrics import Metric
from vitals.observations import observations

__all__ = ["render", "show_live", "summarize_values"]

_SHORT: Final[dict[Metric, str]] = {
    Metric.HEART_RATE: "HR",
    Metric.SPO2: "SpO2",
    Metric.PULSE_RATE: "PR",
    Metric.BODY_TEMPERATURE: "T",
    Metric.SYSTOLIC_BP: "SYS",
    Metric.DIASTOLIC_BP: "DIA",
    Metric.BODY_WEIGHT: "kg",
    Metric.BLOOD_GLUCOSE: "Glu",
    Metric.RESPIRATORY_RATE: "Resp",
    Metric.FALL: "FALL",
    Metric.HELP_BUTTON: "HELP",
}
"""The metrics worth a glance, and their labels (RR intervals, MAP, BMI... are left out)."""

_RADIO_STYLE: Final[dict[RadioState | None, str]] = {
    RadioState.ON: "green",
    RadioState.OUT_OF_RANGE: "yellow",
    RadioState.DEAD: "red",
    None: "dim",
}


def summarize_values(status: PeripheralStatus) -> str:
    """The last delivered values of a device, short: ``HR 72 Resp 16``."""
    parts: list[str] = []
    for value in status.last_values.values():
        for observation in observations(value):
            label = _SHORT.get(observation.metric)
            if label is None:
                continue
            number = observation.value
            text = f"{number:.1f}" if number != int(number) else f"{int(number)}"
            if observation.metric in (Metric.FALL, Metric.HELP_BUTTON):
                parts.append(label)
            else:
                parts.append(f"{label} {text}")
    return " ".join(parts)


def _link(status: PeripheralStatus) -> str:
    if status.central is not None:
        return "[green]connected[/]"
    if status.advertising:
        return "[cyan]advertising[/]"
    return "[dim]idle[/]"


def render(status: RuntimeStatus) -> Table:
    when = dt.datetime.fromtimestamp(status.sim_time, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    gateway = "[green]attached[/]" if status.host_attached else "[dim]none[/]"
    table = Table(
        title=f"CareWatch simulator - {when}",
        caption=(
            f"gateway radio: {gateway}   delivered: {status.deliveries}   "
            f"ticks: {status.ticks}   firmware errors: {status.firmware_errors}\n"
            f"scenarios: {', '.join(status.scenarios) or '-'}"
        ),
        expand=False,
    )
    for column, justify in (
        ("resident", "left"),
        ("device", "left"),
        ("kind", "left"),
        ("radio", "left"),
        ("link", "left"),
        ("battery", "right"),
        ("pending", "right"),
        ("sent", "right"),
        ("last values", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for device in sorted(status.devices, key=lambda d: (status.residents.get(d.id, ""), d.id)):
        radio = device.radio.value if device.radio is not None else "-"
        table.add_row(
            status.residents.get(device.id, "-"),
            device.id,
            device.kind.value,
            f"[{_RADIO_STYLE[device.radio]}]{radio}[/]",
            _link(device),
            f"{device.battery} %" if device.battery is not None else "-",
            str(device.pending) if device.pending else "",
            str(device.delivered),
            summarize_values(device),
        )
    return table


async def show_live(
    status: Callable[[], RuntimeStatus],
    *,
    console: Console | None = None,
    period: float = 0.5,
) -> None:
    """Redraw the table every ``period`` seconds until cancelled."""
    with Live(render(status()), console=console, refresh_per_second=4, auto_refresh=False) as live:
        while True:
            await asyncio.sleep(period)
            live.update(render(status()), refresh=True)
