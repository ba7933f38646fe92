"""The CareWatch simulator: simulated residents wearing simulated BLE devices.

The pure half (no I/O, everything deterministic from a seed):

* :mod:`firmware_sim.noise` - noise that is a pure function of (seed, stream, time);
* :mod:`firmware_sim.physiology` - a resident's true vital signs over time, and heart beats;
* :mod:`firmware_sim.scenarios` - scripted scenarios (fever, sepsis, falls, dead batteries...)
  and the ground truth they label;
* :mod:`firmware_sim.firmware` - what each device sends and when (:class:`DeviceFirmware`), and
  :class:`Simulation`, which builds a whole site;
* :mod:`firmware_sim.site` - the care home as a TOML file (``seeds/``);
* :mod:`firmware_sim.clock` - simulated time from an injected monotonic clock.

The Bumble half (virtual controllers, GATT peripherals, the runtime loop and the command line)
lives in ``controller``, ``peripheral``, ``runtime``, ``table`` and ``__main__``; importing this
package does not import Bumble.
"""

from firmware_sim.clock import SimClock
from firmware_sim.firmware import (
    INDICATED,
    DeviceConfig,
    DeviceFirmware,
    Emission,
    EmissionSink,
    FirmwareStats,
    RadioState,
    Simulation,
    indicated,
)
from firmware_sim.noise import Noise, derive_seed
from firmware_sim.physiology import Consciousness, Physiology, Profile, VitalSigns
from firmware_sim.scenarios import (
    Expected,
    Scenario,
    ScenarioError,
    ScenarioKind,
    ScenarioSpec,
    SimulatorError,
    TruthEvent,
    TruthRecorder,
    news2_score,
    parse_scenario_arg,
)
from firmware_sim.site import SEEDS_DIR, Site, SiteError, find_site, load_site, parse_site

__all__ = [
    "INDICATED",
    "SEEDS_DIR",
    "Consciousness",
    "DeviceConfig",
    "DeviceFirmware",
    "Emission",
    "EmissionSink",
    "Expected",
    "FirmwareStats",
    "Noise",
    "Physiology",
    "Profile",
    "RadioState",
    "Scenario",
    "ScenarioError",
    "ScenarioKind",
    "ScenarioSpec",
    "SimClock",
    "Simulation",
    "SimulatorError",
    "Site",
    "SiteError",
    "TruthEvent",
    "TruthRecorder",
    "VitalSigns",
    "derive_seed",
    "find_site",
    "indicated",
    "load_site",
    "news2_score",
    "parse_scenario_arg",
    "parse_site",
]
