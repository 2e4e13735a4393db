"""What a step reports about its gradients, and the loss-scale policy that reads it.

Every step (``fastadam.adam_step``, ``Adam.step``, ...) returns a ``StepReport``. A step with
``skip_nonfinite`` or ``max_grad_norm`` first looks at all its gradients in one fused pass:
``grad_norm`` is their global L2 norm (of the unscaled gradients, before clipping), and
``skipped`` says that a gradient was inf or NaN, so nothing was written.
"""

from __future__ import annotations

import math
from typing import NamedTuple

__all__ = ["DynamicLossScaler", "StepReport"]


class StepReport(NamedTuple):
    """What a step did: ``skipped`` (no array was written because a gradient was inf or NaN)
    and ``grad_norm`` (the global L2 norm of the unscaled gradients; None when the step was not
    asked to look at them)."""

    skipped: bool = False
    grad_norm: float | None = None


class DynamicLossScaler:
    """The usual dynamic loss-scale policy (as torch's ``GradScaler``) over step reports.

    Multiply the loss by ``scale`` before the backward pass, pass ``grad_scale=scaler.scale``
    to a step built with ``skip_nonfinite=True`` and give its report to ``update``: a skipped
    step (overflow) multiplies the scale by ``backoff_factor``; ``growth_interval`` steps in a
    row without one multiply it by ``growth_factor``.

    Parameters
    ----------
    init_scale : float
        The first scale (default 2**16).
    growth_factor, backoff_factor : float
        Greater than 1, and between 0 and 1 (defaults 2.0 and 0.5).
    growth_interval : int
        Clean steps before the scale grows (default 2000).
    min_scale, max_scale : float
        Bounds of the scale (defaults 2**-24 and 2**24 times the initial scale).
    """

    def __init__(
        self,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        min_scale: float | None = None,
        max_scale: float | None = None,
    ) -> None:
        if not (math.isfinite(init_scale) and init_scale > 0):
            raise ValueError(f"init_scale must be a finite number > 0, got {init_scale}")
        if not growth_factor > 1.0:
            raise ValueError(f"growth_factor must be > 1, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"backoff_factor must be in (0, 1), got {backoff_factor}")
        if int(growth_interval) != growth_interval or growth_interval < 1:
            raise ValueError(f"growth_interval must be an int >= 1, got {growth_interval}")
        self.scale = float(init_scale)
        self.growth_factor = float(growth_factor)
        self.backoff_factor = float(backoff_factor)
        self.growth_interval = int(growth_interval)
        self.min_scale = float(min_scale) if min_scale is not None else init_scale * 2.0**-24
        self.max_scale = float(max_scale) if max_scale is not None else init_scale * 2.0**24
        self.clean_steps = 0
        self.skipped_steps = 0

    def update(self, report: StepReport) -> bool:
        """Adjust the scale from a step's report; returns True when the scale changed."""
        if report.skipped:
            self.skipped_steps += 1
            self.clean_steps = 0
            new = max(self.scale * self.backoff_factor, self.min_scale)
        else:
            self.clean_steps += 1
            if self.clean_steps < self.growth_interval:
                return False
            self.clean_steps = 0
            new = min(self.scale * self.growth_factor, self.max_scale)
        changed = new != self.scale
        self.scale = new
        return changed

    def state_dict(self) -> dict:
        return {
            "scale": self.scale,
            "growth_factor": self.growth_factor,
            "backoff_factor": self.backoff_factor,
            "growth_interval": self.growth_interval,
            "min_scale": self.min_scale,
            "max_scale": self.max_scale,
            "clean_steps": self.clean_steps,
            "skipped_steps": self.skipped_steps,
        }

    def load_state_dict(self, state: dict) -> None:
        for key in self.state_dict():
            setattr(self, key, type(getattr(self, key))(state[key]))

    def __repr__(self) -> str:
        return (
            f"DynamicLossScaler(scale={self.scale}, clean_steps={self.clean_steps}, "
            f"skipped_steps={self.skipped_steps})"
        )
