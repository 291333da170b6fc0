"""Optimizer ops of the ai.onnx.preview.training domain: Adagrad, Adam, Momentum.

Each takes a learning rate R and an iteration count T (scalars) and then, for n tensors to
optimize, all n X's, then all n G's (gradients), then each optimizer state group (n each);
it outputs all new X's then each new state group. Updates are computed in float64 and rounded
to each input's own dtype. (Gradient, which needs autodiff of the graph, is not implemented.)
"""

from __future__ import annotations

import numpy as np

from providers.cpu.opset import register

TRAINING_DOMAIN = "ai.onnx.preview.training"


def _scalar(v, what: str) -> float:
    a = np.asarray(v)
    if a.size != 1:
        raise ValueError(f"{what} must be a scalar, got shape {a.shape}")
    return a.reshape(-1)[0].item()


def _groups(tensors, n_groups: int, op: str) -> list[list[np.ndarray]]:
    """Splits the inputs after R and T into ``n_groups`` equal groups of n tensors."""
    if len(tensors) == 0 or len(tensors) % n_groups:
        raise ValueError(f"{op}: expected {n_groups} groups of equally many tensors after R "
                         f"and T, got {len(tensors)} tensors")
    n = len(tensors) // n_groups
    return [[np.asarray(t) for t in tensors[k * n:(k + 1) * n]] for k in range(n_groups)]


def _f64(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float64)


@register("Adagrad", since=1, domain=TRAINING_DOMAIN)
def adagrad(r, t, *tensors, decay_factor=0.0, epsilon=1e-6, norm_coefficient=0.0):
    """r' = r / (1 + t * decay); g' = norm * x + g; h' = h + g'^2;
    x' = x - r' * g' / (sqrt(h') + epsilon)."""
    xs, gs, hs = _groups(tensors, 3, "Adagrad")
    rate = _scalar(r, "Adagrad R") / (1.0 + _scalar(t, "Adagrad T") * decay_factor)
    new_x, new_h = [], []
    for x, g, h in zip(xs, gs, hs):
        g_reg = norm_coefficient * _f64(x) + _f64(g)
        h_new = _f64(h) + g_reg * g_reg
        x_new = _f64(x) - rate * g_reg / (np.sqrt(h_new) + epsilon)
        new_x.append(x_new.astype(x.dtype))
        new_h.append(h_new.astype(h.dtype))
    return new_x + new_h


@register("Adam", since=1, domain=TRAINING_DOMAIN)
def adam(r, t, *tensors, alpha=0.9, beta=0.999, epsilon=1e-6, norm_coefficient=0.0,
         norm_coefficient_post=0.0):
    """g' = norm * x + g; v' = alpha v + (1 - alpha) g'; h' = beta h + (1 - beta) g'^2;
    r' = r sqrt(1 - beta^t) / (1 - alpha^t) when t > 0 (else r);
    x' = (1 - norm_post) (x - r' v' / (sqrt(h') + epsilon))."""
    xs, gs, vs, hs = _groups(tensors, 4, "Adam")
    rate = _scalar(r, "Adam R")
    step = _scalar(t, "Adam T")
    if step > 0:
        rate = rate * np.sqrt(1.0 - beta ** step) / (1.0 - alpha ** step)
    new_x, new_v, new_h = [], [], []
    for x, g, v, h in zip(xs, gs, vs, hs):
        g_reg = norm_coefficient * _f64(x) + _f64(g)
        v_new = alpha * _f64(v) + (1.0 - alpha) * g_reg
        h_new = beta * _f64(h) + (1.0 - beta) * g_reg * g_reg
        x_new = _f64(x) - rate * v_new / (np.sqrt(h_new) + epsilon)
        x_new = (1.0 - norm_coefficient_post) * x_new
        new_x.append(x_new.astype(x.dtype))
        new_v.append(v_new.astype(v.dtype))
        new_h.append(h_new.astype(h.dtype))
    return new_x + new_v + new_h


@register("Momentum", since=1, domain=TRAINING_DOMAIN)
def momentum(r, t, *tensors, alpha=None, beta=None, mode=None, norm_coefficient=None):
    """g' = norm * x + g; v' = alpha v + beta' g' (beta' = 1 on the first step, t == 0);
    standard: x' = x - r v'; nesterov: x' = x - r (g' + alpha v')."""
    for name, val in (("alpha", alpha), ("beta", beta), ("mode", mode),
                      ("norm_coefficient", norm_coefficient)):
        if val is None:
            raise ValueError(f"Momentum needs the '{name}' attribute")
    if mode not in ("standard", "nesterov"):
        raise ValueError(f"Momentum: unknown mode '{mode}'")
    xs, gs, vs = _groups(tensors, 3, "Momentum")
    rate = _scalar(r, "Momentum R")
    beta_t = beta if _scalar(t, "Momentum T") > 0 else 1.0
    new_x, new_v = [], []
    for x, g, v in zip(xs, gs, vs):
        g_reg = norm_coefficient * _f64(x) + _f64(g)
        v_new = alpha * _f64(v) + beta_t * g_reg
        if mode == "standard":
            x_new = _f64(x) - rate * v_new
        else:
            x_new = _f64(x) - rate * (g_reg + alpha * v_new)
        new_x.append(x_new.astype(x.dtype))
        new_v.append(v_new.astype(v.dtype))
    return new_x + new_v
