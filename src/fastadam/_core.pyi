"""Stubs of fastadam's compiled module (cpp/python/register_*.cpp)."""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from typing_extensions import TypeAlias

from .scaling import StepReport

# float32, float64, float16, or ml_dtypes.bfloat16 (whose scalar type is not np.floating);
# state and master copies of a 16-bit parameter are float32.
_FloatArray: TypeAlias = npt.NDArray[np.generic]
# (grad_scale, max_grad_norm or None, skip_nonfinite, stochastic_rounding, seed)
_StepOptions: TypeAlias = tuple[float, float | None, bool, bool, int]
# (lr, beta1, beta2, eps, weight_decay, amsgrad, maximize, decoupled, bias_correction), and
# keras_eps as a tenth entry when given (False: torch's eps, True: Keras's)
_AdamHyperTuple: TypeAlias = (
    tuple[float, float, float, float, float, bool, bool, bool, bool]
    | tuple[float, float, float, float, float, bool, bool, bool, bool, bool]
)
# (lr, momentum, dampening, weight_decay, nesterov, maximize)
_SgdHyperTuple: TypeAlias = tuple[float, float, float, float, bool, bool]
# (lr, lr_decay, weight_decay, eps, maximize)
_AdagradHyperTuple: TypeAlias = tuple[float, float, float, float, bool]
# (lr, alpha, eps, weight_decay, momentum, centered, maximize)
_RmspropHyperTuple: TypeAlias = tuple[float, float, float, float, float, bool, bool]
# (lr, beta1, beta2, eps, weight_decay, maximize)
_AdamaxHyperTuple: TypeAlias = tuple[float, float, float, float, float, bool]
# (lr, beta1, beta2, eps, weight_decay, momentum_decay, decoupled, maximize)
_NadamHyperTuple: TypeAlias = tuple[float, float, float, float, float, float, bool, bool]
# (lr, beta1, beta2, eps, weight_decay, maximize, sgd_phase, sgd_lr)
_SwatsHyperTuple: TypeAlias = tuple[float, float, float, float, float, bool, bool, float]
# (lr, beta1, beta2, eps, weight_decay, decoupled, maximize)
_RadamHyperTuple: TypeAlias = tuple[float, float, float, float, float, bool, bool]

# register_adam.cpp

def adam_step(
    param: _FloatArray,
    grad: _FloatArray,
    exp_avg: _FloatArray,
    exp_avg_sq: _FloatArray,
    *,
    step: int,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    max_exp_avg_sq: _FloatArray | None = None,
    maximize: bool = False,
    decoupled: bool = False,
    bias_correction: bool = True,
    master: _FloatArray | None = None,
    grad_scale: float = 1.0,
    max_grad_norm: float | None = None,
    skip_nonfinite: bool = False,
    stochastic_rounding: bool = False,
    seed: int = 0,
    eps_mode: str = "torch",
) -> StepReport: ...
def adam_step_multi(
    params: Sequence[_FloatArray],
    grads: Sequence[_FloatArray],
    exp_avgs: Sequence[_FloatArray],
    exp_avg_sqs: Sequence[_FloatArray],
    *,
    steps: int | Sequence[int],
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    max_exp_avg_sqs: Sequence[_FloatArray] | None = None,
    maximize: bool = False,
    decoupled: bool = False,
    bias_correction: bool = True,
    masters: Sequence[_FloatArray | None] | None = None,
    grad_scale: float = 1.0,
    max_grad_norm: float | None = None,
    skip_nonfinite: bool = False,
    stochastic_rounding: bool = False,
    seed: int = 0,
    eps_mode: str = "torch",
) -> StepReport: ...
def adam_step_sets(
    params: Sequence[_FloatArray],
    grads: Sequence[_FloatArray],
    exp_avgs: Sequence[_FloatArray],
    exp_avg_sqs: Sequence[_FloatArray],
    max_exp_avg_sqs: Sequence[_FloatArray | None],
    steps: int | Sequence[int],
    hypers: _AdamHyperTuple | Sequence[_AdamHyperTuple],
    masters: Sequence[_FloatArray | None] | None = None,
    options: _StepOptions | None = None,
    /,
) -> StepReport: ...
def bandwidth_probe(
    params: Sequence[_FloatArray],
    grads: Sequence[_FloatArray],
    exp_avgs: Sequence[_FloatArray],
    exp_avg_sqs: Sequence[_FloatArray],
    masters: Sequence[_FloatArray | None] | None = None,
) -> StepReport: ...

# register_adam8bit.cpp (codes: uint8, one per element; scales: float32, one per 256-element block)

_Codes: TypeAlias = npt.NDArray[np.uint8]
_Scales: TypeAlias = npt.NDArray[np.float32]

def adam8bit_step(
    param: _FloatArray,
    grad: _FloatArray,
    exp_avg_codes: _Codes,
    exp_avg_scales: _Scales,
    exp_avg_sq_codes: _Codes,
    exp_avg_sq_scales: _Scales,
    *,
    step: int,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    amsgrad: bool = False,
    max_exp_avg_sq_codes: _Codes | None = None,
    max_exp_avg_sq_scales: _Scales | None = None,
    maximize: bool = False,
    decoupled: bool = False,
    bias_correction: bool = True,
    master: _FloatArray | None = None,
    grad_scale: float = 1.0,
    max_grad_norm: float | None = None,
    skip_nonfinite: bool = False,
    stochastic_rounding: bool = False,
    seed: int = 0,
    eps_mode: str = "torch",
) -> StepReport: ...
def adam8bit_step_sets(
    params: Sequence[_FloatArray],
    grads: Sequence[_FloatArray],
    exp_avgs: Sequence[_FloatArray | None],
    exp_avg_sqs: Sequence[_FloatArray | None],
    max_exp_avg_sqs: Sequence[_FloatArray | None],
    exp_avg_codes: Sequence[_Codes | None],
    exp_avg_scales: Sequence[_Scales | None],
    exp_avg_sq_codes: Sequence[_Codes | None],
    exp_avg_sq_scales: Sequence[_Scales | None],
    max_exp_avg_sq_codes: Sequence[_Codes | None],
    max_exp_avg_sq_scales: Sequence[_Scales | None],
    steps: int | Sequence[int],
    hypers: _AdamHyperTuple | Sequence[_AdamHyperTuple],
    masters: Sequence[_FloatArray | None] | None = None,
    options: _StepOptions | None = None,
    /,
) -> StepReport: ...
def adam8bit_bandwidth_probe(
    params: Sequence[_FloatArray],
    grads: Sequence[_FloatArray],
    exp_avg_codes: Sequence[_Codes],
    exp_avg_scales: Sequence[_Scales],
    exp_avg_sq_codes: Sequence[_Codes],
    exp_avg_sq_scales: Sequence[_Scales],
) -> StepReport: ...

# register_sgd.cpp

def sgd_step(
    param: _FloatArray,
    grad: _FloatArray,
    momentum_buffer: _FloatArray | None = None,
    *,
    lr: float = 1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
    first_step: bool = False,
    master: _FloatArray | None = None,
    grad_scale: float = 1.0,
    max_grad_norm: float | None = None,
    skip_nonfinite: bool = False,
) -> StepReport: ...
def sgd_step_multi(
    params: Sequence[_FloatArray],
    grads: Sequence[_FloatArray],
    momentum_buffers: Sequence[_FloatArray] | None = None,
    *,
    lr: float = 1e-3,
    momentum: float = 0.0,
    dampening: float = 0.0,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
    first_steps: bool | Sequence[bool] = False,
    masters: Sequence[_FloatArray | None] | None = None,
    grad_scale: float = 1.0,
    max_grad_norm: float | None = None,
    skip_nonfinite: bool = False,
) -> StepReport: ...
def sgd_step_sets(
    params: Sequence[_FloatArray],
    grads: Sequence[_FloatArray],
    momentum_buffers: Sequence[_FloatArray | None],
    first_steps: bool | Sequence[bool],
    hypers: _SgdHyperTuple | Sequence[_SgdHyperTuple],
    masters: Sequence[_FloatArray | None] | None = None,
    options: _StepOptions | None = None,
    /,
) -> StepReport: ...

# register_adagrad.cpp

def adagrad_step(
    param: _FloatArray,
    grad: _FloatArray,
    state_sum: _FloatArray,
    *,
    step: int,
    lr: float = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    eps: float = 1e-10,
    maximize: bool = False,
    master: _FloatArray | None = None,
    grad_scale: float = 1.0,
    max_grad_norm: float | None = None,
    skip_nonfinite: bool = False,
    stochastic_rounding: bool = False,
    seed: int = 0,
) -> StepReport: ...
def adagrad_step_multi(
    params: Sequence[_FloatArray],
    grads: Sequence[_FloatArray],
    state_sums: Sequence[_FloatArray],
    *,
    steps: int | Sequence[int],
    lr: float = 1e-2,
    lr_decay: float = 0.0,
    weight_decay: float = 0.0,
    eps: float = 1e-10,
    maximize: bool = False,
    masters: Sequence[_FloatArray | None] | None = None,
    grad_scale: float = 1.0,
    max_grad_norm: float | None = None,
    skip_nonfinite: bool = False,
    stochastic_rounding: bool = False,
    seed: int = 0,
) -> StepReport: ...
def adagrad_step_sets(
    params: Sequence[_FloatArray],
    grads: Sequence[_FloatArray],
    state_sums: Sequence[_FloatArray],
    steps: int | Sequence[int],
    hypers: _AdagradHyperTuple | Sequence[_AdagradHyperTuple],
    masters: Sequence[_FloatArray | None] | None = None,
    options: _StepOptions | None = None,
    /,
) -> StepReport: ...

# register_family.cpp

def rmsprop_step_sets(
    params: Sequence[_FloatArray],
    grads: Sequence[_FloatArray],
    square_avgs: Sequence[_FloatArray],
    grad_avgs: Sequence[_FloatArray | None],
    momentum_buffers: Sequence[_FloatArray | None],
    steps: int | Sequence[int],
    hypers: _RmspropHyperTuple | Sequence[_RmspropHyperTuple],
    masters: Sequence[_FloatArray | None] | None = None,
    options: _StepOptions | None = None,
    /,
) -> StepReport: ...
def adamax_step_sets(
    params: Sequence[_FloatArray],
    grads: Sequence[_FloatArray],
    exp_avgs: Sequence[_FloatArray],
    exp_infs: Sequence[_FloatArray],
    steps: int | Sequence[int],
    hypers: _AdamaxHyperTuple | Sequence[_AdamaxHyperTuple],
    masters: Sequence[_FloatArray | None] | None = None,
    options: _StepOptions | None = None,
    /,
) -> StepReport: ...
def nadam_step_sets(
    params: Sequence[_FloatArray],
    grads: Sequence[_FloatArray],
    exp_avgs: Sequence[_FloatArray],
    exp_avg_sqs: Sequence[_FloatArray],
    steps: int | Sequence[int],
    hypers: _NadamHyperTuple | Sequence[_NadamHyperTuple],
    masters: Sequence[_FloatArray | None] | None = None,
    options: _StepOptions | None = None,
    /,
) -> StepReport: ...
def swats_step_sets(
    params: Sequence[_FloatArray],
    grads: Sequence[_FloatArray],
    exp_avgs: Sequence[_FloatArray],
    exp_avg_sqs: Sequence[_FloatArray],
    momentum_buffers: Sequence[_FloatArray | None],
    steps: int | Sequence[int],
    hypers: _SwatsHyperTuple | Sequence[_SwatsHyperTuple],
    masters: Sequence[_FloatArray | None] | None,
    options: _StepOptions | None,
    dots: npt.NDArray[np.float64],
    /,
) -> StepReport: ...
def nadam_mu_product(beta1: float, momentum_decay: float, step: int) -> float: ...
def radam_step_sets(
    params: Sequence[_FloatArray],
    grads: Sequence[_FloatArray],
    exp_avgs: Sequence[_FloatArray],
    exp_avg_sqs: Sequence[_FloatArray],
    steps: int | Sequence[int],
    hypers: _RadamHyperTuple | Sequence[_RadamHyperTuple],
    masters: Sequence[_FloatArray | None] | None = None,
    options: _StepOptions | None = None,
    /,
) -> StepReport: ...

# register_runtime.cpp

def available_isas() -> list[str]: ...
def get_isa() -> str: ...
def set_isa(name: str) -> None: ...
def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def default_num_threads() -> int: ...
def zeros_state(shape: Sequence[int], dtype: np.dtype) -> _FloatArray: ...
def unchanged(
    groups_now: list, groups: tuple, tensors: tuple, watched: tuple, dicts: tuple, others: tuple
) -> list | None: ...

parallel_threshold: int
