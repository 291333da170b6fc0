"""Signal ops: DFT, STFT, the Hann/Hamming/Blackman windows and MelWeightMatrix.

Complex values travel as a trailing axis of size 2 (real, imaginary); real signals as a
trailing axis of size 1. Transforms run on numpy's FFT in the input's precision.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from providers.cpu.opset import register


def _np_dtype(onnx_type: int) -> np.dtype:
    return np.dtype(helper.tensor_dtype_to_np_dtype(int(onnx_type)))


def _scalar(v, default=None):
    if v is None or np.asarray(v).size == 0:
        return default
    return np.asarray(v).reshape(-1)[0].item()


def _to_complex(x: np.ndarray) -> np.ndarray:
    """[..., 1|2] -> complex; complex64 unless the input is float64 (numpy's FFT then runs
    in single precision, as onnxruntime's does)."""
    x = np.asarray(x)
    ct = np.complex128 if x.dtype == np.float64 else np.complex64
    if x.shape[-1] == 1:
        return x[..., 0].astype(ct)
    if x.shape[-1] == 2:
        out = np.empty(x.shape[:-1], ct)
        out.real = x[..., 0]
        out.imag = x[..., 1]
        return out
    raise ValueError("the last dimension must be 1 (real) or 2 (complex)")


def _from_complex(c: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return np.stack([c.real, c.imag], axis=-1).astype(dtype)


def _fit_length(c: np.ndarray, axis: int, n: int) -> np.ndarray:
    """Truncate or zero-pad ``c`` along ``axis`` to ``n`` entries."""
    have = c.shape[axis]
    if have == n:
        return c
    if have > n:
        return np.take(c, np.arange(n), axis=axis)
    pad = [(0, 0)] * c.ndim
    pad[axis] = (0, n - have)
    return np.pad(c, pad)


def _dft(x, dft_length, axis: int, inverse: int, onesided: int):
    x = np.asarray(x)
    rank = x.ndim
    if axis < 0:
        axis += rank
    if not 0 <= axis < rank - 1:
        raise ValueError(f"DFT axis {axis} is out of range for a rank-{rank} input")
    real_input = x.shape[-1] == 1
    c = _to_complex(x)
    n_axis = c.shape[axis]
    if onesided and inverse:
        # IRFFT: one-sided complex spectrum in, full real signal out.
        n = int(_scalar(dft_length, 2 * (n_axis - 1)))
        out = np.fft.irfft(c, n=n, axis=axis)
        return out[..., None].astype(x.dtype)
    n = int(_scalar(dft_length, n_axis))
    if n < 1:
        raise ValueError("dft_length must be positive")
    c = _fit_length(c, axis, n)
    if inverse:
        out = np.fft.ifft(c, axis=axis)
    elif onesided:
        # Real input: RFFT. Complex input: the first n // 2 + 1 bins (as onnxruntime).
        out = np.fft.rfft(c.real, axis=axis) if real_input else np.take(
            np.fft.fft(c, axis=axis), np.arange(n // 2 + 1), axis=axis)
    else:
        out = np.fft.fft(c, axis=axis)
    return _from_complex(out, x.dtype)


@register("DFT", since=17, shape_inputs=(1,))
def dft_17(input, dft_length=None, *, axis=1, inverse=0, onesided=0):
    """DFT-17: the axis is an attribute (default 1, the first axis after the batch)."""
    return _dft(input, dft_length, int(axis), inverse, onesided)


@register("DFT", since=20, shape_inputs=(1, 2))
def dft_20(input, dft_length=None, axis=None, *, inverse=0, onesided=0):
    """DFT-20: the axis is an optional input (default -2, the last signal axis)."""
    return _dft(input, dft_length, int(_scalar(axis, -2)), inverse, onesided)


@register("STFT", since=17, shape_inputs=(1, 3))
def stft(signal, frame_step, window=None, frame_length=None, *, onesided=1):
    """Short-time Fourier transform: [batch, frames, bins, 2]."""
    signal = np.asarray(signal)
    if signal.ndim != 3:
        raise ValueError("STFT expects a signal of shape [batch, length, 1 or 2]")
    c = _to_complex(signal)  # [batch, length]
    length = c.shape[1]
    step = int(_scalar(frame_step))
    flen = _scalar(frame_length)
    if window is not None:
        window = np.asarray(window)
        if flen is not None and int(flen) != window.shape[0]:
            raise ValueError("window length and frame_length differ")
        flen = window.shape[0]
    flen = length if flen is None else int(flen)
    if step <= 0 or flen <= 0 or flen > length:
        raise ValueError("STFT needs 0 < frame_length <= signal_length and frame_step > 0")
    frames = (length - flen) // step + 1
    starts = np.arange(frames) * step
    idx = starts[:, None] + np.arange(flen)[None, :]
    framed = c[:, idx]  # [batch, frames, flen]
    if window is not None:
        if window.ndim == 2 and window.shape[-1] == 2:
            raise ValueError("complex windows are not supported")
        framed = framed * window.astype(framed.real.dtype)
    real = signal.shape[-1] == 1
    if onesided:
        # A complex signal keeps the first flen // 2 + 1 bins (onnxruntime's behaviour).
        out = np.fft.rfft(framed.real, axis=-1) if real else np.fft.fft(
            framed, axis=-1)[..., :flen // 2 + 1]
    else:
        out = np.fft.fft(framed, axis=-1)
    return _from_complex(out, signal.dtype)


# --------------------------------------------------------------------------------------------
# Windows: computed in float64, cast to output_datatype.


def _window_positions(size, periodic):
    """Sample positions and the period; a symmetric window of size 1 divides 0 by 0 and
    yields NaN, as onnxruntime's does."""
    n = int(_scalar(size))
    denom = n if periodic else n - 1
    return np.arange(n, dtype=np.float64), float(denom) if denom else np.nan


@register("HannWindow", since=17, shape_inputs=(0,))
def hann_window(size, *, output_datatype=1, periodic=1):
    k, denom = _window_positions(size, periodic)
    return (np.sin(np.pi * k / denom) ** 2).astype(_np_dtype(output_datatype))


@register("HammingWindow", since=17, shape_inputs=(0,))
def hamming_window(size, *, output_datatype=1, periodic=1):
    k, denom = _window_positions(size, periodic)
    alpha = 25.0 / 46.0
    return (alpha - (1 - alpha) * np.cos(2 * np.pi * k / denom)).astype(
        _np_dtype(output_datatype))


@register("BlackmanWindow", since=17, shape_inputs=(0,))
def blackman_window(size, *, output_datatype=1, periodic=1):
    k, denom = _window_positions(size, periodic)
    w = 0.42 - 0.5 * np.cos(2 * np.pi * k / denom) + 0.08 * np.cos(4 * np.pi * k / denom)
    return w.astype(_np_dtype(output_datatype))


@register("MelWeightMatrix", since=17, shape_inputs=(0, 1))
def mel_weight_matrix(num_mel_bins, dft_length, sample_rate, lower_edge_hertz,
                      upper_edge_hertz, *, output_datatype=1):
    """Triangular mel filters [dft_length // 2 + 1, num_mel_bins], peaks of 1.

    Band edges are num_mel_bins + 2 points spaced evenly on the mel scale
    (mel = 2595 * log10(1 + f / 700)) and snapped down to DFT bins
    ((dft_length + 1) * f // sample_rate), the definition onnxruntime and the onnx reference
    share."""
    n_mel = int(_scalar(num_mel_bins))
    n_dft = int(_scalar(dft_length))
    rate = _scalar(sample_rate)
    low = float(_scalar(lower_edge_hertz))
    high = float(_scalar(upper_edge_hertz))
    n_bins = n_dft // 2 + 1
    mel_low = 2595.0 * np.log10(1.0 + low / 700.0)
    mel_high = 2595.0 * np.log10(1.0 + high / 700.0)
    points = np.arange(n_mel + 2, dtype=np.float64)
    step = (mel_high - mel_low) / (n_mel + 2)
    hz = 700.0 * (10.0 ** ((points * step + mel_low) / 2595.0) - 1.0)
    edges = np.floor((n_dft + 1) * hz / rate).astype(np.int64)
    out = np.zeros((n_bins, n_mel), np.float64)
    for m in range(n_mel):
        left, center, right = edges[m], edges[m + 1], edges[m + 2]
        if center == left:
            if 0 <= center < n_bins:
                out[center, m] = 1.0
        else:
            j = np.arange(left, center + 1)
            keep = (j >= 0) & (j < n_bins)
            out[j[keep], m] = (j[keep] - left) / (center - left)
        if right > center:
            j = np.arange(center, right)
            keep = (j >= 0) & (j < n_bins)
            out[j[keep], m] = (right - j[keep]) / (right - center)
    return out.astype(_np_dtype(output_datatype))
