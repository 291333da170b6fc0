"""Loss ops: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.

Both take scores [N, C, d1, ..., dk] and integer targets [N, d1, ..., dk]. The per-element loss
is ``-input[n, target, d...] * weight[target]`` (weight 1 when absent); an element whose target
equals ``ignore_index`` contributes 0 and has weight 0. ``reduction``: "none" keeps the
[N, d1...] tensor, "sum" adds it up, "mean" divides the sum by the sum of the weights of the
elements not ignored. float16/bfloat16 compute in float32 and round back once at the end.
"""

from __future__ import annotations

import numpy as np

from providers.cpu.opset import register

_F32 = np.dtype(np.float32)


def _work_dtype(dt: np.dtype) -> np.dtype:
    return dt if dt in (np.dtype(np.float32), np.dtype(np.float64)) else _F32


def _nll(logp: np.ndarray, target, weight, reduction: str, ignore_index) -> np.ndarray:
    """The loss from log-probabilities ``logp`` (already in the working dtype)."""
    if logp.ndim < 2:
        raise ValueError(f"loss input must be [N, C, ...], got shape {logp.shape}")
    target = np.asarray(target).astype(np.int64)
    n, c = logp.shape[:2]
    if target.shape != (n,) + logp.shape[2:]:
        raise ValueError(f"target shape {target.shape} does not match input {logp.shape}")
    keep = np.ones(target.shape, dtype=bool)
    if ignore_index is not None:
        keep = target != int(ignore_index)
    safe = np.where(keep, target, 0)
    if np.any((safe < 0) | (safe >= c)):
        raise IndexError(f"a target is outside [0, {c}) and is not ignore_index")
    picked = np.take_along_axis(logp, safe[:, None], axis=1)[:, 0]
    if weight is not None:
        w = np.asarray(weight).astype(logp.dtype)[safe]
    else:
        w = np.ones(target.shape, dtype=logp.dtype)
    w = np.where(keep, w, 0).astype(logp.dtype)
    loss = -picked * w
    if reduction == "none":
        return loss
    if reduction == "sum":
        return np.asarray(loss.sum(), dtype=logp.dtype)
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(loss.sum() / w.sum(), dtype=logp.dtype)
    raise ValueError(f"unknown reduction '{reduction}'")


@register("NegativeLogLikelihoodLoss", since=12)
def negative_log_likelihood_loss(x, target, weight=None, *, ignore_index=None,
                                 reduction="mean"):
    x = np.asarray(x)
    work = x.astype(_work_dtype(x.dtype), copy=False)
    return _nll(work, target, weight, reduction, ignore_index).astype(x.dtype)


def _log_softmax_axis1(x: np.ndarray) -> np.ndarray:
    shifted = x - np.max(x, axis=1, keepdims=True)
    with np.errstate(divide="ignore"):
        return shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))


@register("SoftmaxCrossEntropyLoss", since=12)
def softmax_cross_entropy_loss(scores, labels, weights=None, *, ignore_index=None,
                               reduction="mean"):
    """The NLL loss of log_softmax(scores) over axis 1; the optional second output is that
    log_softmax."""
    scores = np.asarray(scores)
    work = scores.astype(_work_dtype(scores.dtype), copy=False)
    logp = _log_softmax_axis1(work)
    loss = _nll(logp, labels, weights, reduction, ignore_index).astype(scores.dtype)
    # Both outputs are always returned; an unrequested log_prob is dropped by the caller.
    return loss, logp.astype(scores.dtype)
