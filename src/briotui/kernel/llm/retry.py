"""Backoff between retries of one provider: exponential, capped, with a little jitter."""

from __future__ import annotations

import random

from briotui.kernel.llm.config import RetryConfig


def backoff_delay(policy: RetryConfig, retry: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``retry`` (1 for the first retry).

    The delay is ``base_delay_s * multiplier ** (retry - 1)``, capped at ``max_delay_s``,
    then spread by up to ``jitter`` of itself so that many clients do not retry in step.

    Args:
        policy: The retry settings.
        retry: Which retry this is, from 1.
        rng: The random source (tests pass a seeded one); the module's otherwise.
    """
    if retry < 1 or policy.base_delay_s <= 0:
        return 0.0
    delay = min(policy.max_delay_s, policy.base_delay_s * policy.multiplier ** (retry - 1))
    if policy.jitter > 0:
        delay *= 1 + policy.jitter * (rng or random).random()
    return min(delay, policy.max_delay_s * (1 + policy.jitter))
