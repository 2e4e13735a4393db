"""What a step reports about its gradients, and the loss-scale policy that reads it.

Every step (``fastadam.adam_step``, ``Adam.step``, ...) returns a ``StepReport``. A step with
``skip_nonfinite`` or ``max_grad_norm`` first looks at all its gradients in one fused pass:
``grad_norm`` is their global L2 norm (of the unscaled gradients, before clipping), and
``skipped`` says that a gradient was inf or NaN (or became inf once unscaled, with a
``grad_scale`` below 1), so nothing was written.
"""

from __future__ import annotations

import math
import numbers
from typing import NamedTuple

__all__ = ["DynamicLossScaler", "StepReport"]


class StepReport(NamedTuple):
    """What a step did: ``skipped`` (no array was written because a gradient was inf or NaN,
    or became inf once unscaled) and ``grad_norm`` (the global L2 norm of the unscaled gradients; None when the step was not
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
        scale = _number("init_scale", init_scale)
        min_scale = scale * 2.0**-24 if min_scale is None else min_scale
        max_scale = scale * 2.0**24 if max_scale is None else max_scale
        self._assign(
            _checked(
                scale=scale,
                growth_factor=growth_factor,
                backoff_factor=backoff_factor,
                growth_interval=growth_interval,
                min_scale=min_scale,
                max_scale=max_scale,
                clean_steps=0,
                skipped_steps=0,
                scale_name="init_scale",
            )
        )

    def _assign(self, values: dict) -> None:
        for key, value in values.items():
            setattr(self, key, value)

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
        """Restores ``state_dict()``'s values, checked as the constructor checks its arguments;
        a refused dict (a missing key, a bad value) raises with the scaler unchanged."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        missing = [key for key in self.state_dict() if key not in state]
        if missing:
            raise ValueError(f"state lacks {', '.join(map(repr, missing))}")
        self._assign(_checked(**{key: state[key] for key in self.state_dict()}))

    def __repr__(self) -> str:
        return (
            f"DynamicLossScaler(scale={self.scale}, clean_steps={self.clean_steps}, "
            f"skipped_steps={self.skipped_steps})"
        )


def _checked(
    *,
    scale: float,
    growth_factor: float,
    backoff_factor: float,
    growth_interval: int,
    min_scale: float,
    max_scale: float,
    clean_steps: int,
    skipped_steps: int,
    scale_name: str = "scale",
) -> dict:
    """The scaler's values, validated and converted, under their attribute names."""
    out = {
        "scale": _number(scale_name, scale),
        "growth_factor": _number("growth_factor", growth_factor),
        "backoff_factor": _number("backoff_factor", backoff_factor),
        "growth_interval": _count("growth_interval", growth_interval, 1),
        "min_scale": _number("min_scale", min_scale),
        "max_scale": _number("max_scale", max_scale),
        "clean_steps": _count("clean_steps", clean_steps, 0),
        "skipped_steps": _count("skipped_steps", skipped_steps, 0),
    }
    if not (math.isfinite(out["scale"]) and out["scale"] > 0):
        raise ValueError(f"{scale_name} must be a finite number > 0, got {scale}")
    if not out["growth_factor"] > 1.0:
        raise ValueError(f"growth_factor must be > 1, got {growth_factor}")
    if not 0.0 < out["backoff_factor"] < 1.0:
        raise ValueError(f"backoff_factor must be in (0, 1), got {backoff_factor}")
    if not 0.0 < out["min_scale"] <= out["max_scale"]:
        raise ValueError(
            f"min_scale and max_scale must satisfy 0 < min_scale <= max_scale, got {min_scale} "
            f"and {max_scale}"
        )
    return out


def _number(name: str, value: object) -> float:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None


def _count(name: str, value: object, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an int >= {least}, got {value!r}")
    if not math.isfinite(value) or value != int(value) or value < least:
        raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
    return int(value)
