"""The spike rule on the curves people actually see."""

from __future__ import annotations

import math

from steward.training import health


def llm_loss(n: int = 40) -> list[float]:
    """A language model's loss around 2.1 with the usual step-to-step noise."""
    return [2.1 + 0.04 * math.sin(1.7 * i) + 0.02 * math.cos(5.3 * i) for i in range(n)]


def test_a_typical_language_model_loss_spike_is_caught():
    assert health.spike(llm_loss(), 3.5) is not None


def test_noise_and_a_twenty_percent_wobble_are_not_spikes():
    history = llm_loss()
    assert health.spike(history, 2.2) is None
    assert health.spike(history, 2.5) is None
    noisy = [0.30 + 0.03 * math.sin(i) for i in range(30)]
    assert health.spike(noisy, 0.36) is None
