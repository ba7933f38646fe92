"""firmware_sim.noise: values are pure functions of (seed, stream, knot or time)."""

from __future__ import annotations

import itertools
import math
import random
import statistics

from firmware_sim.noise import Noise, derive_seed, mix64, smoothstep


def test_mix64_is_splitmix64() -> None:
    # The first output of splitmix64 seeded with 0 (Vigna's reference implementation).
    assert mix64(0) == 0xE220A8397B1DCDAF
    assert mix64(1 << 64) == mix64(0)


def test_values_do_not_depend_on_the_order_of_asking() -> None:
    knots = list(range(-50, 50))
    forward = {k: Noise.of(1, "hr").uniform(k) for k in knots}
    shuffled = knots[:]
    random.Random(4).shuffle(shuffled)
    noise = Noise.of(1, "hr")
    assert {k: noise.uniform(k) for k in shuffled} == forward
    assert {k: noise.gaussian(k) for k in knots} == {
        k: Noise.of(1, "hr").gaussian(k) for k in reversed(knots)
    }


def test_streams_and_seeds_are_independent() -> None:
    a = [Noise.of(1, "a").uniform(k) for k in range(100)]
    b = [Noise.of(1, "b").uniform(k) for k in range(100)]
    c = [Noise.of(2, "a").uniform(k) for k in range(100)]
    assert a != b
    assert a != c
    assert Noise.of(1, "a").child("x") == Noise.of(1, "a").child("x") != Noise.of(1, "a")
    assert derive_seed(1, "resident", "r01") != derive_seed(1, "resident", "r02")
    assert Noise.of(1, "a").uniform(3, lane=1) != Noise.of(1, "a").uniform(3)


def test_distributions() -> None:
    noise = Noise.of(9, "dist")
    uniforms = [noise.uniform(k) for k in range(20_000)]
    assert all(0.0 <= u < 1.0 for u in uniforms)
    assert abs(statistics.fmean(uniforms) - 0.5) < 0.01
    gaussians = [noise.gaussian(k) for k in range(20_000)]
    assert abs(statistics.fmean(gaussians)) < 0.03
    assert abs(statistics.pstdev(gaussians) - 1.0) < 0.03
    assert all(-4.0 <= g <= 4.0 for g in gaussians)
    assert all(2.0 <= noise.between(k, 2.0, 3.0) < 3.0 for k in range(100))


def test_smooth_noise_is_bounded_continuous_and_hits_its_knots() -> None:
    noise = Noise.of(5, "smooth")
    period = 60.0
    values = [noise.smooth(t * 0.5, period) for t in range(10_000)]
    assert all(-1.0 <= v <= 1.0 for v in values)
    steps = [abs(b - a) for a, b in itertools.pairwise(values)]
    # smoothstep's slope is at most 1.5 per knot interval: 2 * 1.5 * 0.5 s / 60 s.
    assert max(steps) <= 2 * 1.5 * 0.5 / period + 1e-9
    for knot in range(-3, 3):
        assert math.isclose(noise.smooth(knot * period, period), 2 * noise.uniform(knot) - 1)
    # Large Unix-like times work the same.
    t = 1_741_000_000.25
    assert noise.smooth(t, 0.5) == Noise.of(5, "smooth").smooth(t, 0.5)


def test_per_sample_values_key_on_rounded_time() -> None:
    noise = Noise.of(3, "sample")
    assert noise.at(100.0004, 0.001) == noise.at(100.0, 0.001)
    assert noise.at(100.0, 0.001) != noise.at(100.001, 0.001)
    assert noise.gaussian_at(7.2, 1.0) == noise.gaussian_at(6.8, 1.0)


def test_smoothstep() -> None:
    assert smoothstep(-1) == 0.0
    assert smoothstep(2) == 1.0
    assert smoothstep(0.5) == 0.5
