"""Tests of dlcore.nn.functional: every op against a naive loop implementation written here
(numpy, float64 reference), against PyTorch's functional ops (``-m torch``), numerical
robustness, thread-count independence, input validation and dropout statistics.

Gradient *checks* (finite differences) live in test_autograd.py; here the backward pass is
compared with independently derived gradients (naive loops / PyTorch).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import dlcore
import dlcore.nn.functional as F

F32, F64 = np.float32, np.float64
DTYPES = [F32, F64]


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------

def dl(a):
    """numpy -> dlcore tensor (a private copy, so the numpy array is never aliased)."""
    return dlcore.from_numpy(np.array(a, copy=True))


def leaf(a):
    return dl(a).requires_grad_()


def close(got, ref, dtype, rtol=None, atol_scale=None, err_msg=""):
    """Compare ``got`` (dlcore tensor or numpy) with the float64 reference ``ref``.

    float32: rtol 1e-4, float64: rtol 1e-10; atol relative to the reference's magnitude
    (sums of products may cancel)."""
    if isinstance(got, dlcore.Tensor):
        got = got.numpy()
    got = np.asarray(got)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, f"{err_msg}: shape {got.shape}, expected {ref.shape}"
    if dtype is not None:
        assert got.dtype == np.dtype(dtype), f"{err_msg}: dtype {got.dtype}, expected {np.dtype(dtype)}"
    if rtol is None:
        rtol = 1e-4 if np.dtype(dtype) == np.float32 else 1e-10
    scale = max(1.0, float(np.abs(ref).max())) if ref.size else 1.0
    atol = rtol * scale if atol_scale is None else atol_scale * scale
    np.testing.assert_allclose(got.astype(np.float64), ref, rtol=rtol, atol=atol, err_msg=err_msg)


def backward(fn, inputs, dy):
    """Runs y = fn(*leaves); y.backward(dy); returns (y as numpy, [grad of each input as numpy])."""
    leaves = [leaf(a) for a in inputs]
    y = fn(*leaves)
    y.backward(dl(np.asarray(dy, dtype=y.numpy().dtype)))
    grads = []
    for t in leaves:
        assert t.grad is not None, "no gradient reached an input"
        grads.append(t.grad.numpy().copy())
    return y.numpy().copy(), grads


def rand(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# ----------------------------------------------------------------------------------------
# naive reference implementations (float64, explicit loops)
# ----------------------------------------------------------------------------------------

def naive_conv2d(x, w, b, stride, padding, dilation, groups, dy=None):
    """Direct convolution (cross-correlation): explicit loops over groups, output pixels and
    kernel taps. Returns y, and with ``dy`` also (dx, dw, db) of <y, dy>."""
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    dh, dw_ = pair(dilation)
    assert Cg * groups == C and K % groups == 0
    Kg = K // groups
    P = (H + 2 * ph - dh * (R - 1) - 1) // sh + 1
    Q = (W + 2 * pw - dw_ * (S - 1) - 1) // sw + 1
    xp = np.zeros((N, C, H + 2 * ph, W + 2 * pw))
    xp[:, :, ph:ph + H, pw:pw + W] = x
    y = np.zeros((N, K, P, Q))
    if dy is not None:
        dy = np.asarray(dy, np.float64)
        dxp = np.zeros_like(xp)
        dw = np.zeros_like(w)
    for g in range(groups):
        cs = slice(g * Cg, (g + 1) * Cg)
        ks = slice(g * Kg, (g + 1) * Kg)
        for p in range(P):
            for q in range(Q):
                for r in range(R):
                    for s in range(S):
                        ih, iw = p * sh + r * dh, q * sw + s * dw_
                        patch = xp[:, cs, ih, iw]  # (N, Cg)
                        y[:, ks, p, q] += patch @ w[ks, :, r, s].T
                        if dy is not None:
                            g_out = dy[:, ks, p, q]  # (N, Kg)
                            dxp[:, cs, ih, iw] += g_out @ w[ks, :, r, s]
                            dw[ks, :, r, s] += g_out.T @ patch
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None, None]
    if dy is None:
        return y
    return y, dxp[:, :, ph:ph + H, pw:pw + W], dw, dy.sum((0, 2, 3))


def pool_out_size(L, k, s, p, d, ceil_mode):
    """PyTorch's pooling_output_shape."""
    num = L + 2 * p - d * (k - 1) - 1
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= L + p:
        out -= 1
    return out


def naive_max_pool2d(x, k, stride, padding, dilation, ceil_mode, dy=None):
    """Returns y, flat indices (h*W+w) and with ``dy`` dx (gradient routed to the first arg-max)."""
    x = np.asarray(x, np.float64)
    N, C, H, W = x.shape
    kh, kw = pair(k)
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    dh, dw = pair(dilation)
    P = pool_out_size(H, kh, sh, ph, dh, ceil_mode)
    Q = pool_out_size(W, kw, sw, pw, dw, ceil_mode)
    y = np.zeros((N, C, P, Q))
    idx = np.zeros((N, C, P, Q), np.int64)
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for p in range(P):
                for q in range(Q):
                    best, bi = -math.inf, None
                    for r in range(kh):
                        h = p * sh - ph + r * dh
                        if not 0 <= h < H:
                            continue
                        for s in range(kw):
                            ww = q * sw - pw + s * dw
                            if not 0 <= ww < W:
                                continue
                            if bi is None or x[n, c, h, ww] > best:
                                best, bi = x[n, c, h, ww], (h, ww)
                    y[n, c, p, q] = best
                    idx[n, c, p, q] = bi[0] * W + bi[1]
                    if dy is not None:
                        dx[n, c, bi[0], bi[1]] += dy[n, c, p, q]
    return (y, idx) if dy is None else (y, idx, dx)


def naive_avg_pool2d(x, k, stride, padding, ceil_mode, count_include_pad, dy=None):
    x = np.asarray(x, np.float64)
    N, C, H, W = x.shape
    kh, kw = pair(k)
    sh, sw = pair(stride)
    ph, pw = pair(padding)
    P = pool_out_size(H, kh, sh, ph, 1, ceil_mode)
    Q = pool_out_size(W, kw, sw, pw, 1, ceil_mode)
    y = np.zeros((N, C, P, Q))
    dx = np.zeros_like(x)
    for p in range(P):
        for q in range(Q):
            h0, w0 = p * sh - ph, q * sw - pw
            h1, w1 = min(h0 + kh, H + ph), min(w0 + kw, W + pw)  # window, clipped to the padded input
            pool_size = (h1 - h0) * (w1 - w0)
            h0c, w0c, h1c, w1c = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)
            div = pool_size if count_include_pad else (h1c - h0c) * (w1c - w0c)
            total = np.zeros((N, C))
            for h in range(h0c, h1c):
                for w in range(w0c, w1c):
                    total += x[:, :, h, w]
            y[:, :, p, q] = total / div
            if dy is not None:
                for h in range(h0c, h1c):
                    for w in range(w0c, w1c):
                        dx[:, :, h, w] += dy[:, :, p, q] / div
    return y if dy is None else (y, dx)


def _rows(x, dim):
    """x moved so that ``dim`` is last, flattened to rows (M, C); and how to undo it."""
    xm = np.moveaxis(np.asarray(x, np.float64), dim, -1)
    shp = xm.shape
    return xm.reshape(-1, shp[-1]), (lambda r: np.moveaxis(r.reshape(shp), -1, dim))


def naive_softmax(x, dim, log=False):
    rows, back = _rows(x, dim)
    out = np.zeros_like(rows)
    for i in range(rows.shape[0]):
        m = max(rows[i])
        e = [math.exp(v - m) for v in rows[i]]
        s = sum(e)
        for j in range(rows.shape[1]):
            out[i, j] = (rows[i, j] - m - math.log(s)) if log else e[j] / s
    return back(out)


def naive_cross_entropy_rows(x, t, eps):
    """Per-row losses (M,) and d loss_i / d x (M, C) of label-smoothed softmax cross-entropy."""
    x = np.asarray(x, np.float64)
    M, C = x.shape
    loss = np.zeros(M)
    grad = np.zeros((M, C))
    for i in range(M):
        m = max(x[i])
        lse = m + math.log(sum(math.exp(v - m) for v in x[i]))
        logp = [v - lse for v in x[i]]
        loss[i] = -(1 - eps) * logp[t[i]] - eps / C * sum(logp)
        for j in range(C):
            target = (1 - eps) * (j == t[i]) + eps / C
            grad[i, j] = math.exp(logp[j]) - target
    return loss, grad


def naive_margin_rows(s, t, p, margin, divide_by_C):
    """Per-row multiclass margin losses (M,) and their gradients (M, C)."""
    s = np.asarray(s, np.float64)
    M, C = s.shape
    loss = np.zeros(M)
    grad = np.zeros((M, C))
    for i in range(M):
        y = t[i]
        for j in range(C):
            if j == y:
                continue
            v = s[i, j] - s[i, y] + margin
            if v > 0:
                loss[i] += v if p == 1 else v * v
                d = 1.0 if p == 1 else 2 * v
                grad[i, j] += d
                grad[i, y] -= d
    if divide_by_C:
        loss /= C
        grad /= C
    return loss, grad


def reduce_np(per, grad_rows, reduction, dy=1.0):
    """Applies a reduction to per-row losses; returns (loss, d loss / d x given upstream dy)."""
    per = np.asarray(per)
    if reduction == "none":
        return per, grad_rows * np.asarray(dy).reshape(-1, 1)
    if reduction == "sum":
        return per.sum(), grad_rows * dy
    return per.mean(), grad_rows * dy / per.size


def naive_batch_norm(x, rm, rv, w, b, training, momentum, eps, dy=None):
    """Returns y, new running mean/var and with ``dy`` (dx, dw, db)."""
    x = np.asarray(x, np.float64)
    C = x.shape[1]
    y = np.zeros_like(x)
    rm = None if rm is None else np.array(rm, np.float64)
    rv = None if rv is None else np.array(rv, np.float64)
    dx = np.zeros_like(x)
    dw = np.zeros(C)
    db = np.zeros(C)
    for c in range(C):
        xc = x[:, c]
        n = xc.size
        if training:
            mean = xc.sum() / n
            var = ((xc - mean) ** 2).sum() / n
            if rm is not None:
                rm[c] = (1 - momentum) * rm[c] + momentum * mean
                rv[c] = (1 - momentum) * rv[c] + momentum * var * n / (n - 1)
        else:
            mean, var = rm[c], rv[c]
        inv = 1.0 / math.sqrt(var + eps)
        xhat = (xc - mean) * inv
        gamma = 1.0 if w is None else float(w[c])
        y[:, c] = xhat * gamma + (0.0 if b is None else float(b[c]))
        if dy is not None:
            g = np.asarray(dy, np.float64)[:, c]
            db[c] = g.sum()
            dw[c] = (g * xhat).sum()
            if training:
                dx[:, c] = gamma * inv / n * (n * g - g.sum() - xhat * (g * xhat).sum())
            else:
                dx[:, c] = gamma * inv * g
    if dy is None:
        return y, rm, rv
    return y, rm, rv, (dx, dw, db)


# ----------------------------------------------------------------------------------------
# 1. conv2d against the naive loops: forward, input gradient, weight gradient, bias gradient
# ----------------------------------------------------------------------------------------

# (N, C, H, W, K, R, S, stride, padding, dilation, groups)
CONV_CONFIGS = [
    pytest.param((2, 3, 7, 6, 4, 3, 3, 1, 0, 1, 1), id="basic"),
    pytest.param((1, 3, 8, 8, 5, 3, 3, 1, 1, 1, 1), id="batch1-pad1"),
    pytest.param((2, 4, 9, 7, 6, 3, 2, (2, 1), (1, 0), 1, 2), id="groups2-RneS-stride21"),
    pytest.param((2, 4, 7, 7, 4, 3, 3, 1, 1, 1, 4), id="depthwise"),
    pytest.param((2, 4, 8, 9, 8, 3, 3, 2, 2, 2, 4), id="depthwise-x2-stride2-dil2"),
    pytest.param((3, 5, 6, 5, 3, 1, 1, 1, 0, 1, 1), id="1x1"),
    pytest.param((2, 6, 5, 7, 4, 1, 1, 2, 0, 1, 2), id="1x1-stride2-groups2"),
    pytest.param((1, 6, 4, 5, 6, 1, 1, 1, 1, 1, 3), id="1x1-pad1-groups3"),
    pytest.param((1, 2, 10, 9, 3, 2, 4, (3, 2), (1, 2), (2, 1), 1), id="odd-everything"),
    pytest.param((2, 3, 5, 5, 2, 5, 5, 1, 2, 1, 1), id="kernel-as-big-as-input"),
    pytest.param((1, 2, 4, 5, 3, 3, 3, 1, 3, 1, 1), id="pad-larger-than-kernel"),
    pytest.param((2, 2, 8, 7, 2, 3, 3, 3, 0, 1, 1), id="stride3-leftover"),
    pytest.param((2, 2, 9, 9, 4, 3, 3, 1, (2, 1), (2, 1), 2), id="stride1-dilated-groups"),
    pytest.param((8, 2, 5, 5, 3, 3, 3, 1, 1, 1, 1), id="many-small-images"),
    pytest.param((1, 8, 48, 48, 2, 3, 3, 1, 1, 1, 1), id="banded-large-image"),
    pytest.param((1, 3, 1, 1, 2, 1, 1, 1, 0, 1, 1), id="1x1-image"),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", CONV_CONFIGS)
def test_conv2d_matches_naive_loops(cfg, dtype):
    N, C, H, W, K, R, S, stride, padding, dilation, groups = cfg
    rng = np.random.default_rng(hash(cfg) % 2**32)
    x = rand(rng, (N, C, H, W), dtype)
    w = rand(rng, (K, C // groups, R, S), dtype)
    b = rand(rng, (K,), dtype)
    y_ref = naive_conv2d(x, w, b, stride, padding, dilation, groups)
    dy = rand(rng, y_ref.shape, dtype)
    y_ref, dx_ref, dw_ref, db_ref = naive_conv2d(x, w, b, stride, padding, dilation, groups, dy=dy)
    y, (dx, dw, db) = backward(
        lambda x_, w_, b_: F.conv2d(x_, w_, b_, stride=stride, padding=padding, dilation=dilation, groups=groups),
        [x, w, b], dy)
    close(y, y_ref, dtype, err_msg="conv2d forward")
    close(dx, dx_ref, dtype, err_msg="conv2d input gradient")
    close(dw, dw_ref, dtype, err_msg="conv2d weight gradient")
    close(db, db_ref, dtype, err_msg="conv2d bias gradient")


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_conv2d_without_bias_and_only_some_inputs_requiring_grad(dtype):
    rng = np.random.default_rng(1)
    x = rand(rng, (2, 3, 6, 5), dtype)
    w = rand(rng, (4, 3, 3, 2), dtype)
    dy = rand(rng, (2, 4, 4, 4), dtype)
    y_ref, dx_ref, dw_ref, _ = naive_conv2d(x, w, None, 1, 0, 1, 1, dy=dy)
    # weight only
    xt, wt = dl(x), leaf(w)
    y = F.conv2d(xt, wt)
    y.backward(dl(dy))
    close(y, y_ref, dtype)
    close(wt.grad, dw_ref, dtype)
    assert xt.grad is None
    # input only
    xt, wt = leaf(x), dl(w)
    F.conv2d(xt, wt).backward(dl(dy))
    close(xt.grad, dx_ref, dtype)
    assert wt.grad is None


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_conv2d_unbatched_chw(dtype):
    rng = np.random.default_rng(2)
    x = rand(rng, (3, 7, 6), dtype)
    w = rand(rng, (5, 3, 3, 3), dtype)
    b = rand(rng, (5,), dtype)
    dy = rand(rng, (5, 4, 3), dtype)
    y_ref, dx_ref, dw_ref, db_ref = naive_conv2d(x[None], w, b, 2, 1, 1, 1, dy=dy[None])
    y, (dx, dw, db) = backward(lambda a, c, d: F.conv2d(a, c, d, stride=2, padding=1), [x, w, b], dy)
    close(y, y_ref[0], dtype)
    close(dx, dx_ref[0], dtype)
    close(dw, dw_ref, dtype)
    close(db, db_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_conv2d_noncontiguous_inputs(dtype):
    rng = np.random.default_rng(3)
    xbig = rand(rng, (2, 6, 7, 3), dtype).transpose(0, 3, 2, 1)  # (2, 3, 7, 6), strided
    wbig = rand(rng, (4, 3, 3, 4), dtype)[:, :, :, ::2]  # (4, 3, 3, 2), strided
    y_ref = naive_conv2d(xbig, wbig, None, 1, 1, 1, 1)
    y = F.conv2d(dlcore.from_numpy(xbig), dlcore.from_numpy(wbig), padding=1)
    close(y, y_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("R,S,dilation", [(3, 3, 1), (5, 3, 1), (3, 1, 2), (1, 1, 1)])
def test_conv2d_padding_same_and_valid(R, S, dilation, dtype):
    rng = np.random.default_rng(4)
    x = rand(rng, (2, 3, 7, 8), dtype)
    w = rand(rng, (4, 3, R, S), dtype)
    y = F.conv2d(dl(x), dl(w), padding="same", dilation=dilation)
    assert tuple(y.shape) == (2, 4, 7, 8)
    pad = (dilation * (R - 1) // 2, dilation * (S - 1) // 2)
    close(y, naive_conv2d(x, w, None, 1, pad, dilation, 1), dtype)
    close(F.conv2d(dl(x), dl(w), padding="valid", dilation=dilation), naive_conv2d(x, w, None, 1, 0, dilation, 1),
          dtype)


def test_conv2d_leaves_inputs_unchanged():
    rng = np.random.default_rng(5)
    x = rand(rng, (2, 4, 6, 6), F64)
    w = rand(rng, (4, 2, 3, 3), F64)
    xc, wc = x.copy(), w.copy()
    xt, wt = dlcore.from_numpy(x).requires_grad_(), dlcore.from_numpy(w).requires_grad_()
    F.conv2d(xt, wt, stride=2, padding=1, groups=2).sum().backward()
    np.testing.assert_array_equal(x, xc)
    np.testing.assert_array_equal(w, wc)


# ----------------------------------------------------------------------------------------
# linear, activations, flatten, adaptive pooling, mse, l2 penalty (direct numpy formulas)
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_linear_matches_loops(dtype):
    rng = np.random.default_rng(6)
    x = rand(rng, (2, 3, 5), dtype)
    w = rand(rng, (4, 5), dtype)
    b = rand(rng, (4,), dtype)
    dy = rand(rng, (2, 3, 4), dtype)
    ref = np.zeros((2, 3, 4))
    dx = np.zeros((2, 3, 5))
    dw = np.zeros((4, 5))
    for i in range(2):
        for j in range(3):
            for o in range(4):
                ref[i, j, o] = sum(float(x[i, j, k]) * float(w[o, k]) for k in range(5)) + float(b[o])
                for k in range(5):
                    dx[i, j, k] += float(dy[i, j, o]) * float(w[o, k])
                    dw[o, k] += float(dy[i, j, o]) * float(x[i, j, k])
    y, (gx, gw, gb) = backward(F.linear, [x, w, b], dy)
    close(y, ref, dtype)
    close(gx, dx, dtype)
    close(gw, dw, dtype)
    close(gb, dy.astype(F64).sum((0, 1)), dtype)
    close(F.linear(dl(x), dl(w)), ref - b.astype(F64), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_activations(dtype):
    rng = np.random.default_rng(7)
    x = rand(rng, (4, 7), dtype, scale=3.0)
    x[0, :3] = 0.0
    x64 = x.astype(F64)
    dy = rand(rng, x.shape, dtype)
    dy64 = dy.astype(F64)
    y, (g,) = backward(F.relu, [x], dy)
    close(y, np.where(x64 > 0, x64, 0.0), dtype)
    close(g, np.where(x64 > 0, dy64, 0.0), dtype)
    for slope in (0.01, 0.2):
        y, (g,) = backward(lambda t: F.leaky_relu(t, slope), [x], dy)
        close(y, np.where(x64 > 0, x64, slope * x64), dtype, err_msg=f"leaky_relu {slope}")
        close(g, np.where(x64 > 0, dy64, slope * dy64), dtype, err_msg=f"leaky_relu grad {slope}")
    close(F.leaky_relu(dl(x)), np.where(x64 > 0, x64, 0.01 * x64), dtype, err_msg="default slope 0.01")
    y, (g,) = backward(F.tanh, [x], dy)
    close(y, np.tanh(x64), dtype)
    close(g, dy64 * (1 - np.tanh(x64) ** 2), dtype)
    y, (g,) = backward(F.sigmoid, [x], dy)
    sg = 1 / (1 + np.exp(-x64))
    close(y, sg, dtype)
    close(g, dy64 * sg * (1 - sg), dtype)


def test_flatten_and_adaptive_avg_pool():
    rng = np.random.default_rng(8)
    x = rand(rng, (2, 3, 4, 6), F64)
    assert tuple(F.flatten(dl(x)).shape) == (2, 72)
    np.testing.assert_array_equal(F.flatten(dl(x)).numpy(), x.reshape(2, 72))
    np.testing.assert_array_equal(F.flatten(dl(x), 0, 1).numpy(), x.reshape(6, 4, 6))
    np.testing.assert_array_equal(F.flatten(dl(x), start_dim=2).numpy(), x.reshape(2, 3, 24))
    y, (g,) = backward(lambda t: F.adaptive_avg_pool2d(t, 1), [x], np.ones((2, 3, 1, 1)))
    close(y, x.mean((2, 3), keepdims=True), F64)
    close(g, np.full(x.shape, 1 / 24), F64)
    y = F.adaptive_avg_pool2d(dl(x), (2, 3))
    ref = np.zeros((2, 3, 2, 3))
    for i in range(2):
        for j in range(3):
            ref[:, :, i, j] = x[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].mean((2, 3))
    close(y, ref, F64)
    close(F.adaptive_avg_pool2d(dl(x[0]), 1), x[0].mean((1, 2), keepdims=True), F64)  # unbatched


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_and_l2_penalty(reduction, dtype):
    rng = np.random.default_rng(9)
    a = rand(rng, (3, 4), dtype)
    b = rand(rng, (3, 4), dtype)
    d = a.astype(F64) - b.astype(F64)
    ref = {"mean": (d * d).mean(), "sum": (d * d).sum(), "none": d * d}[reduction]
    dy = rand(rng, (3, 4), dtype) if reduction == "none" else np.array(1.5, dtype)
    y, (ga, gb) = backward(lambda x, t: F.mse_loss(x, t, reduction=reduction), [a, b], dy)
    close(y, ref, dtype)
    scale = {"mean": 1 / 12, "sum": 1.0, "none": 1.0}[reduction]
    close(ga, 2 * d * dy.astype(F64) * scale, dtype)
    close(gb, -2 * d * dy.astype(F64) * scale, dtype)
    p, (g1, g2) = backward(lambda x, t: F.l2_penalty([x, t]), [a, b], np.array(1.0, dtype))
    close(p, (a.astype(F64) ** 2).sum() + (b.astype(F64) ** 2).sum(), dtype)
    close(g1, 2 * a.astype(F64), dtype)
    close(g2, 2 * b.astype(F64), dtype)
    close(F.l2_penalty(dl(a)), (a.astype(F64) ** 2).sum(), dtype)


# ----------------------------------------------------------------------------------------
# pooling against the naive loops
# ----------------------------------------------------------------------------------------

# (N, C, H, W, kernel, stride, padding, dilation, ceil_mode)
MAXPOOL_CONFIGS = [
    pytest.param((2, 3, 6, 6, 2, None, 0, 1, False), id="2x2-default-stride"),
    pytest.param((1, 2, 7, 5, 3, 2, 1, 1, False), id="3x3-s2-p1-odd"),
    pytest.param((2, 2, 7, 8, (3, 2), (2, 1), (1, 0), 1, False), id="rect-kernel"),
    pytest.param((1, 3, 9, 9, 3, 2, 1, 2, False), id="dilated"),
    pytest.param((2, 2, 7, 7, 2, 2, 0, 1, True), id="ceil-mode"),
    pytest.param((1, 2, 8, 6, 3, 2, 1, 1, True), id="ceil-mode-padded"),
    pytest.param((1, 1, 5, 5, 3, 3, 1, 1, True), id="ceil-mode-last-window-dropped"),
    pytest.param((2, 2, 6, 6, 3, 1, 1, 1, False), id="overlapping-windows"),
    pytest.param((1, 1, 5, 5, 1, 1, 0, 1, False), id="1x1"),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", MAXPOOL_CONFIGS)
def test_max_pool2d_matches_naive_loops(cfg, dtype):
    N, C, H, W, k, stride, padding, dilation, ceil_mode = cfg
    rng = np.random.default_rng(abs(hash(cfg)) % 2**32)
    # distinct values so the arg-max is unique
    x = (rng.permutation(N * C * H * W).reshape(N, C, H, W) * 0.37 - 10).astype(dtype)
    s = k if stride is None else stride
    y_ref, idx_ref = naive_max_pool2d(x, k, s, padding, dilation, ceil_mode)
    dy = rand(rng, y_ref.shape, dtype)
    _, _, dx_ref = naive_max_pool2d(x, k, s, padding, dilation, ceil_mode, dy=dy.astype(F64))
    kw = dict(padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    if stride is not None:
        kw["stride"] = stride
    y, (dx,) = backward(lambda t: F.max_pool2d(t, k, **kw), [x], dy)
    close(y, y_ref, dtype)
    close(dx, dx_ref, dtype)
    out, idx = F.max_pool2d(dl(x), k, return_indices=True, **kw)
    close(out, y_ref, dtype)
    assert idx.dtype == dlcore.int64
    np.testing.assert_array_equal(idx.numpy(), idx_ref)


def test_max_pool2d_ties_route_gradient_once_and_overlaps_accumulate():
    # constant input: every window's first element is the arg-max (as PyTorch: strict >)
    x = np.ones((1, 1, 4, 4))
    dy = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    _, (dx,) = backward(lambda t: F.max_pool2d(t, 2, stride=1), [x], dy)
    _, _, dx_ref = naive_max_pool2d(x, 2, 1, 0, 1, False, dy=dy)
    np.testing.assert_allclose(dx, dx_ref)
    assert dx.sum() == pytest.approx(dy.sum())
    # one global maximum shared by all overlapping windows: its gradient is the sum
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 5.0
    _, (dx,) = backward(lambda t: F.max_pool2d(t, 2, stride=1), [x], np.ones((1, 1, 2, 2)))
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 1, 1] = 4.0
    np.testing.assert_array_equal(dx, expected)


def test_max_pool2d_negative_inputs_with_padding():
    # padding must behave as -inf, not 0: an all-negative input keeps its values
    x = -np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    y = F.max_pool2d(dl(x), 3, stride=2, padding=1)
    y_ref, _ = naive_max_pool2d(x, 3, 2, 1, 1, False)
    np.testing.assert_array_equal(y.numpy(), y_ref)
    assert (y.numpy() < 0).all()


def test_max_pool2d_unbatched():
    rng = np.random.default_rng(10)
    x = rng.permutation(2 * 5 * 6).reshape(2, 5, 6).astype(F64)
    out, idx = F.max_pool2d(dl(x), 2, return_indices=True)
    y_ref, idx_ref = naive_max_pool2d(x[None], 2, 2, 0, 1, False)
    np.testing.assert_array_equal(out.numpy(), y_ref[0])
    np.testing.assert_array_equal(idx.numpy(), idx_ref[0])


# (N, C, H, W, kernel, stride, padding, ceil_mode, count_include_pad)
AVGPOOL_CONFIGS = [
    pytest.param((2, 3, 6, 6, 2, None, 0, False, True), id="2x2"),
    pytest.param((1, 2, 7, 5, 3, 2, 1, False, True), id="pad-include"),
    pytest.param((1, 2, 7, 5, 3, 2, 1, False, False), id="pad-exclude"),
    pytest.param((2, 2, 7, 8, (3, 2), (2, 1), (1, 1), False, False), id="rect-exclude"),
    pytest.param((1, 2, 7, 7, 2, 2, 0, True, True), id="ceil"),
    pytest.param((1, 2, 8, 6, 3, 2, 1, True, True), id="ceil-pad-include"),
    pytest.param((1, 2, 8, 6, 3, 2, 1, True, False), id="ceil-pad-exclude"),
    pytest.param((2, 1, 5, 5, 4, 3, 2, True, True), id="ceil-window-past-padding"),
    pytest.param((1, 3, 4, 4, 1, 1, 0, False, True), id="1x1"),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", AVGPOOL_CONFIGS)
def test_avg_pool2d_matches_naive_loops(cfg, dtype):
    N, C, H, W, k, stride, padding, ceil_mode, cip = cfg
    rng = np.random.default_rng(abs(hash(cfg)) % 2**32)
    x = rand(rng, (N, C, H, W), dtype)
    s = k if stride is None else stride
    y_ref = naive_avg_pool2d(x, k, s, padding, ceil_mode, cip)
    dy = rand(rng, y_ref.shape, dtype)
    _, dx_ref = naive_avg_pool2d(x, k, s, padding, ceil_mode, cip, dy=dy.astype(F64))
    kw = dict(padding=padding, ceil_mode=ceil_mode, count_include_pad=cip)
    if stride is not None:
        kw["stride"] = stride
    y, (dx,) = backward(lambda t: F.avg_pool2d(t, k, **kw), [x], dy)
    close(y, y_ref, dtype)
    close(dx, dx_ref, dtype)


def test_avg_pool2d_unbatched():
    rng = np.random.default_rng(11)
    x = rand(rng, (3, 5, 4), F64)
    y = F.avg_pool2d(dl(x), 2, stride=1, padding=1, count_include_pad=False)
    close(y, naive_avg_pool2d(x[None], 2, 1, 1, False, False)[0], F64)


# ----------------------------------------------------------------------------------------
# softmax / log_softmax against the naive loops
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape,dim", [((5, 7), 1), ((5, 7), 0), ((5, 7), -1), ((2, 3, 4), 1), ((2, 3, 4), -3),
                                       ((3, 1, 2, 5), 2), ((6,), 0), ((1, 1), 1)])
def test_softmax_log_softmax_match_naive(shape, dim, dtype):
    rng = np.random.default_rng(12)
    x = rand(rng, shape, dtype, scale=3.0)
    dy = rand(rng, shape, dtype)
    s_ref = naive_softmax(x, dim)
    ls_ref = naive_softmax(x, dim, log=True)
    dy64 = dy.astype(F64)
    # gradients: softmax: s * (g - sum(g s)); log_softmax: g - s * sum(g)
    ds_ref = s_ref * (dy64 - (dy64 * s_ref).sum(dim, keepdims=True))
    dls_ref = dy64 - s_ref * dy64.sum(dim, keepdims=True)
    y, (g,) = backward(lambda t: F.softmax(t, dim), [x], dy)
    close(y, s_ref, dtype)
    close(g, ds_ref, dtype)
    y, (g,) = backward(lambda t: F.log_softmax(t, dim), [x], dy)
    close(y, ls_ref, dtype)
    close(g, dls_ref, dtype)


def test_softmax_noncontiguous_input():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((6, 5)).T[:, ::2]  # (5, 3), strided
    close(F.softmax(dlcore.from_numpy(x), 1), naive_softmax(x, 1), F64)
    close(F.log_softmax(dlcore.from_numpy(x), 0), naive_softmax(x, 0, log=True), F64)


# ----------------------------------------------------------------------------------------
# cross-entropy, nll, hinge and multi-margin against the naive loops
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
def test_cross_entropy_matches_naive(eps, reduction, dtype):
    rng = np.random.default_rng(14)
    M, C = 6, 5
    x = rand(rng, (M, C), dtype, scale=2.0)
    t = rng.integers(0, C, size=M)
    per, grad_rows = naive_cross_entropy_rows(x, t, eps)
    dy = rand(rng, (M,), dtype) if reduction == "none" else np.array(0.7, dtype)
    ref, dx_ref = reduce_np(per, grad_rows, reduction, dy.astype(F64))
    tt = dlcore.from_numpy(t.astype(np.int64))
    y, (dx,) = backward(lambda a: F.cross_entropy(a, tt, reduction=reduction, label_smoothing=eps), [x], dy)
    close(y, ref, dtype)
    close(dx, dx_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_spatial_and_single_example(reduction, dtype):
    rng = np.random.default_rng(15)
    # (N, C, d1, d2) logits with (N, d1, d2) targets: one row per (n, d1, d2)
    x = rand(rng, (2, 4, 3, 2), dtype)
    t = rng.integers(0, 4, size=(2, 3, 2))
    rows = np.moveaxis(x, 1, -1).reshape(-1, 4)
    per, grad_rows = naive_cross_entropy_rows(rows, t.reshape(-1), 0.2)
    ref, _ = reduce_np(per, grad_rows, reduction)
    y = F.cross_entropy(dl(x), dl(t), reduction=reduction, label_smoothing=0.2)
    close(y, ref.reshape(2, 3, 2) if reduction == "none" else ref, dtype)
    # gradient of the sum: rows of grad_rows moved back to (N, C, d1, d2)
    _, (dx,) = backward(lambda a: F.cross_entropy(a, dl(t), reduction="sum", label_smoothing=0.2), [x],
                        np.array(1.0, dtype))
    close(dx, np.moveaxis(grad_rows.reshape(2, 3, 2, 4), -1, 1), dtype)
    # (C,) logits with a 0-d target
    v = rand(rng, (5,), dtype)
    per, grad_rows = naive_cross_entropy_rows(v[None], [3], 0.0)
    y = F.cross_entropy(dl(v), dlcore.tensor(3), reduction=reduction)
    assert tuple(y.shape) == ()
    close(y, per[0], dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_matches_naive(reduction, dtype):
    rng = np.random.default_rng(16)
    logp = naive_softmax(rand(rng, (5, 4), F64), 1, log=True).astype(dtype)
    t = rng.integers(0, 4, size=5)
    per = np.array([-float(logp[i, t[i]]) for i in range(5)])
    grad_rows = np.zeros((5, 4))
    for i in range(5):
        grad_rows[i, t[i]] = -1.0
    dy = rand(rng, (5,), dtype) if reduction == "none" else np.array(2.0, dtype)
    ref, dx_ref = reduce_np(per, grad_rows, reduction, dy.astype(F64))
    y, (dx,) = backward(lambda a: F.nll_loss(a, dl(t), reduction=reduction), [logp], dy)
    close(y, ref, dtype)
    close(dx, dx_ref, dtype)


def test_nll_loss_with_minus_inf_log_probs():
    # log-probabilities of exactly 0 (masked classes) are -inf; only the target entry is read
    logp = np.array([[0.0, -np.inf, -np.inf], [-np.inf, -0.5, -0.9]])
    t = np.array([0, 1])
    x = leaf(logp)
    y = F.nll_loss(x, dl(t), reduction="sum")
    assert math.isfinite(y.item()), f"nll_loss of finite target log-probs is {y.item()}"
    assert y.item() == pytest.approx(0.5)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("margin", [1.0, 0.3])
def test_multiclass_hinge_loss_matches_naive(margin, reduction, dtype):
    rng = np.random.default_rng(17)
    s = rand(rng, (7, 5), dtype)
    t = rng.integers(0, 5, size=7)
    per, grad_rows = naive_margin_rows(s, t, 1, margin, False)
    assert (per > 0).any() and (grad_rows == 0).any()  # both active and inactive margins
    dy = rand(rng, (7,), dtype) if reduction == "none" else np.array(1.3, dtype)
    ref, dx_ref = reduce_np(per, grad_rows, reduction, dy.astype(F64))
    y, (dx,) = backward(lambda a: F.multiclass_hinge_loss(a, dl(t), margin=margin, reduction=reduction), [s], dy)
    close(y, ref, dtype)
    close(dx, dx_ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("p", [1, 2])
def test_multi_margin_loss_matches_naive(p, reduction, dtype):
    rng = np.random.default_rng(18)
    s = rand(rng, (6, 4), dtype)
    t = rng.integers(0, 4, size=6)
    per, grad_rows = naive_margin_rows(s, t, p, 0.8, True)
    dy = rand(rng, (6,), dtype) if reduction == "none" else np.array(0.9, dtype)
    ref, dx_ref = reduce_np(per, grad_rows, reduction, dy.astype(F64))
    y, (dx,) = backward(lambda a: F.multi_margin_loss(a, dl(t), p=p, margin=0.8, reduction=reduction), [s], dy)
    close(y, ref, dtype)
    close(dx, dx_ref, dtype)
    # defaults: p=1, margin=1, mean
    per1, _ = naive_margin_rows(s, t, 1, 1.0, True)
    close(F.multi_margin_loss(dl(s), dl(t)), per1.mean(), dtype)


def test_losses_with_noncontiguous_logits_and_targets():
    rng = np.random.default_rng(38)
    base = rng.standard_normal((4, 6))
    x = base.T  # (6, 4), transposed view
    tall = np.array([0, 1, 2, 3, 2, 1, 0, 3, 1, 2, 3, 0])
    t = tall[::2]  # strided int64 targets
    xd, td = dlcore.from_numpy(x), dlcore.from_numpy(t)
    per, _ = naive_cross_entropy_rows(x, t, 0.1)
    close(F.cross_entropy(xd, td, reduction="none", label_smoothing=0.1), per, F64)
    per, _ = naive_margin_rows(x, t, 2, 1.0, True)
    close(F.multi_margin_loss(xd, td, p=2, reduction="none"), per, F64)
    per, _ = naive_margin_rows(x, t, 1, 1.0, False)
    close(F.multiclass_hinge_loss(xd, td, reduction="none"), per, F64)
    close(F.nll_loss(xd, td, reduction="none"), -x[np.arange(6), t], F64)


# ----------------------------------------------------------------------------------------
# 2. the lecture's multiclass SVM example
# ----------------------------------------------------------------------------------------

def test_lecture_multiclass_svm_example():
    scores = dlcore.tensor([[3.2, 5.1, -1.7], [1.3, 4.9, 2.0], [2.2, 2.5, -3.1]])
    targets = dlcore.tensor([0, 1, 2])
    per = F.multiclass_hinge_loss(scores, targets, reduction="none")
    np.testing.assert_allclose(per.numpy(), [2.9, 0.0, 12.9], atol=1e-4)
    assert F.multiclass_hinge_loss(scores, targets).item() == pytest.approx(5.2667, abs=1e-4)
    assert F.multiclass_hinge_loss(scores, targets, reduction="sum").item() == pytest.approx(15.8, abs=1e-4)
    # the per-class version (PyTorch's multi_margin_loss) divides by C = 3
    np.testing.assert_allclose(F.multi_margin_loss(scores, targets, reduction="none").numpy(),
                               [2.9 / 3, 0.0, 12.9 / 3], atol=1e-4)


# ----------------------------------------------------------------------------------------
# batch_norm against the naive loops
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 4, 5), (1, 3, 2, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_naive(shape, training, dtype):
    rng = np.random.default_rng(19)
    C = shape[1]
    x = rand(rng, shape, dtype, scale=2.0) + 1.5
    w = rand(rng, (C,), dtype)
    b = rand(rng, (C,), dtype)
    rm = rand(rng, (C,), dtype)
    rv = (rng.random(C) + 0.5).astype(dtype)
    dy = rand(rng, shape, dtype)
    y_ref, rm_ref, rv_ref, (dx_ref, dw_ref, db_ref) = naive_batch_norm(x, rm, rv, w, b, training, 0.2, 1e-3, dy=dy)
    rmt, rvt = dl(rm), dl(rv)
    y, (dx, dw, db) = backward(
        lambda a, g, h: F.batch_norm(a, rmt, rvt, g, h, training=training, momentum=0.2, eps=1e-3), [x, w, b], dy)
    close(y, y_ref, dtype)
    close(rmt, rm_ref, dtype, err_msg="running_mean")
    close(rvt, rv_ref, dtype, err_msg="running_var")
    close(dx, dx_ref, dtype, err_msg="input grad")
    close(dw, dw_ref, dtype, err_msg="weight grad")
    close(db, db_ref, dtype, err_msg="bias grad")


def test_batch_norm_defaults_and_no_running_stats():
    rng = np.random.default_rng(20)
    x = rand(rng, (4, 3, 2, 2), F64)
    rm, rv = np.zeros(3), np.ones(3)
    rmt, rvt = dl(rm), dl(rv)
    y = F.batch_norm(dl(x), rmt, rvt)  # eval by default: running stats, no affine
    close(y, x / math.sqrt(1 + 1e-5), F64)
    np.testing.assert_array_equal(rmt.numpy(), rm)  # untouched in eval
    y = F.batch_norm(dl(x), rmt, rvt, training=True)  # momentum 0.1, eps 1e-5
    y_ref, rm_ref, rv_ref = naive_batch_norm(x, rm, rv, None, None, True, 0.1, 1e-5)
    close(y, y_ref, F64)
    close(rmt, rm_ref, F64)
    close(rvt, rv_ref, F64)
    y = F.batch_norm(dl(x), None, None, training=True)
    close(y, y_ref, F64)
    # after two steps the running stats are the two-step exponential average
    F.batch_norm(dl(2 * x), rmt, rvt, training=True)
    _, rm2, rv2 = naive_batch_norm(2 * x, rm_ref, rv_ref, None, None, True, 0.1, 1e-5)
    close(rmt, rm2, F64)
    close(rvt, rv2, F64)


# ----------------------------------------------------------------------------------------
# 3. against PyTorch
# ----------------------------------------------------------------------------------------

def _tt(torch, a, grad=False):
    return torch.tensor(np.array(a, copy=True), requires_grad=grad)


def _torch_backward(torch, fn, inputs, dy):
    ts = [_tt(torch, a, grad=True) for a in inputs]
    y = fn(*ts)
    y.backward(_tt(torch, dy))
    return y.detach().numpy(), [t.grad.numpy() for t in ts]


TORCH_CONV_CONFIGS = [
    pytest.param((2, 3, 9, 8, 4, 3, 3, 1, 1, 1, 1), id="3x3-pad1"),
    pytest.param((3, 4, 11, 10, 6, 3, 5, (2, 3), (1, 2), (2, 1), 2), id="groups2-mixed"),
    pytest.param((2, 6, 8, 8, 6, 3, 3, 2, 1, 1, 6), id="depthwise-stride2"),
    pytest.param((2, 8, 7, 7, 4, 1, 1, 1, 0, 1, 1), id="1x1"),
    pytest.param((1, 16, 40, 40, 8, 3, 3, 1, 1, 1, 1), id="banded-batch1"),
    pytest.param((16, 3, 8, 8, 5, 3, 3, 1, 1, 1, 1), id="many-small-images"),
    pytest.param((2, 4, 12, 12, 4, 3, 3, 2, 0, 2, 2), id="stride2-dil2-groups2"),
]


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cfg", TORCH_CONV_CONFIGS)
def test_conv2d_vs_torch(cfg, dtype):
    torch = pytest.importorskip("torch")
    N, C, H, W, K, R, S, stride, padding, dilation, groups = cfg
    rng = np.random.default_rng(21)
    x = rand(rng, (N, C, H, W), dtype)
    w = rand(rng, (K, C // groups, R, S), dtype)
    b = rand(rng, (K,), dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    y_t = torch.nn.functional.conv2d(_tt(torch, x), _tt(torch, w), _tt(torch, b), **kw).numpy()
    dy = rand(rng, y_t.shape, dtype)
    y_t, g_t = _torch_backward(torch, lambda a, c, d: torch.nn.functional.conv2d(a, c, d, **kw), [x, w, b], dy)
    y, g = backward(lambda a, c, d: F.conv2d(a, c, d, **kw), [x, w, b], dy)
    close(y, y_t, dtype, err_msg="forward")
    for name, got, ref in zip(["input", "weight", "bias"], g, g_t):
        close(got, ref, dtype, err_msg=f"{name} gradient")


@pytest.mark.torch
@pytest.mark.parametrize("padding", ["same", "valid"])
def test_conv2d_string_padding_vs_torch(padding):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(22)
    x = rand(rng, (2, 3, 7, 6), F64)
    w = rand(rng, (4, 3, 3, 5), F64)
    ref = torch.nn.functional.conv2d(_tt(torch, x), _tt(torch, w), padding=padding, dilation=(2, 1)).numpy()
    close(F.conv2d(dl(x), dl(w), padding=padding, dilation=(2, 1)), ref, F64)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("k,stride,padding,dilation,ceil_mode",
                         [(2, None, 0, 1, False), (3, 2, 1, 1, False), (3, 2, 1, 1, True), ((2, 3), (1, 2), (1, 1), 1, True),
                          (3, 1, 1, 2, False), (2, 2, 1, 1, True), (3, 3, 0, 1, True)])
def test_max_pool2d_vs_torch(k, stride, padding, dilation, ceil_mode, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(23)
    x = rand(rng, (2, 3, 9, 8), dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    y_t, idx_t = torch.nn.functional.max_pool2d(_tt(torch, x), k, return_indices=True, **kw)
    dy = rand(rng, tuple(y_t.shape), dtype)
    y_t, (dx_t,) = _torch_backward(torch, lambda a: torch.nn.functional.max_pool2d(a, k, **kw), [x], dy)
    y, (dx,) = backward(lambda a: F.max_pool2d(a, k, **kw), [x], dy)
    close(y, y_t, dtype)
    close(dx, dx_t, dtype)
    _, idx = F.max_pool2d(dl(x), k, return_indices=True, **kw)
    np.testing.assert_array_equal(idx.numpy(), idx_t.numpy())


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("k,stride,padding,ceil_mode,cip",
                         [(2, None, 0, False, True), (3, 2, 1, False, True), (3, 2, 1, False, False),
                          (3, 2, 1, True, True), (3, 2, 1, True, False), ((2, 3), (1, 2), (1, 1), True, False),
                          (4, 3, 2, True, True), (4, 3, 2, True, False), (3, 3, 0, True, True)])
def test_avg_pool2d_vs_torch(k, stride, padding, ceil_mode, cip, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(24)
    x = rand(rng, (2, 3, 9, 8), dtype)
    kw = dict(stride=stride, padding=padding, ceil_mode=ceil_mode, count_include_pad=cip)
    y0 = torch.nn.functional.avg_pool2d(_tt(torch, x), k, **kw)
    dy = rand(rng, tuple(y0.shape), dtype)
    y_t, (dx_t,) = _torch_backward(torch, lambda a: torch.nn.functional.avg_pool2d(a, k, **kw), [x], dy)
    y, (dx,) = backward(lambda a: F.avg_pool2d(a, k, **kw), [x], dy)
    close(y, y_t, dtype)
    close(dx, dx_t, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("dim", [0, 1, -1, 2])
def test_softmax_log_softmax_vs_torch(dim, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(25)
    x = rand(rng, (3, 4, 5), dtype, scale=4.0)
    dy = rand(rng, x.shape, dtype)
    for name in ("softmax", "log_softmax"):
        tf = getattr(torch.nn.functional, name)
        df = getattr(F, name)
        y_t, (g_t,) = _torch_backward(torch, lambda a: tf(a, dim), [x], dy)
        y, (g,) = backward(lambda a: df(a, dim), [x], dy)
        close(y, y_t, dtype, err_msg=name)
        close(g, g_t, dtype, err_msg=f"{name} grad")


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.25])
@pytest.mark.parametrize("shape", [(6, 5), (2, 4, 3, 2), (5,)], ids=["NC", "NCdd", "C"])
def test_cross_entropy_vs_torch(shape, eps, reduction, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(26)
    x = rand(rng, shape, dtype, scale=2.0)
    C = shape[1] if len(shape) > 1 else shape[0]
    tshape = (shape[0],) + shape[2:] if len(shape) > 1 else ()
    t = np.asarray(rng.integers(0, C, size=tshape), np.int64)
    kw = dict(reduction=reduction, label_smoothing=eps)
    y0 = torch.nn.functional.cross_entropy(_tt(torch, x), _tt(torch, t), **kw)
    dy = rand(rng, tuple(y0.shape), dtype)
    y_t, (g_t,) = _torch_backward(torch, lambda a: torch.nn.functional.cross_entropy(a, _tt(torch, t), **kw), [x], dy)
    y, (g,) = backward(lambda a: F.cross_entropy(a, dl(t), **kw), [x], dy)
    close(y, y_t, dtype)
    close(g, g_t, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_vs_torch(reduction, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(27)
    x = rand(rng, (2, 4, 3), dtype)
    t = np.asarray(rng.integers(0, 4, size=(2, 3)), np.int64)
    y0 = torch.nn.functional.nll_loss(_tt(torch, x), _tt(torch, t), reduction=reduction)
    dy = rand(rng, tuple(y0.shape), dtype)
    y_t, (g_t,) = _torch_backward(
        torch, lambda a: torch.nn.functional.nll_loss(torch.log_softmax(a, 1), _tt(torch, t), reduction=reduction),
        [x], dy)
    y, (g,) = backward(lambda a: F.nll_loss(F.log_softmax(a, 1), dl(t), reduction=reduction), [x], dy)
    close(y, y_t, dtype)
    close(g, g_t, dtype)


@pytest.mark.torch
def test_nll_loss_minus_inf_vs_torch():
    torch = pytest.importorskip("torch")
    x = np.array([[0.0, -np.inf, 1.0], [2.0, 0.5, -np.inf]])  # masked logits
    t = np.array([2, 0])
    ref = torch.nn.functional.nll_loss(torch.log_softmax(_tt(torch, x), 1), _tt(torch, t)).item()
    got = F.nll_loss(F.log_softmax(dl(x), 1), dl(t)).item()
    assert got == pytest.approx(ref, rel=1e-12)
    ce = F.cross_entropy(dl(x), dl(t)).item()
    assert ce == pytest.approx(torch.nn.functional.cross_entropy(_tt(torch, x), _tt(torch, t)).item(), rel=1e-12)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("p,margin", [(1, 1.0), (2, 1.0), (1, 0.5), (2, 2.0)])
def test_multi_margin_loss_vs_torch(p, margin, reduction, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(28)
    x = rand(rng, (7, 5), dtype)
    t = np.asarray(rng.integers(0, 5, size=7), np.int64)
    kw = dict(p=p, margin=margin, reduction=reduction)
    y0 = torch.nn.functional.multi_margin_loss(_tt(torch, x), _tt(torch, t), **kw)
    dy = rand(rng, tuple(y0.shape), dtype)
    y_t, (g_t,) = _torch_backward(torch, lambda a: torch.nn.functional.multi_margin_loss(a, _tt(torch, t), **kw),
                                  [x], dy)
    y, (g,) = backward(lambda a: F.multi_margin_loss(a, dl(t), **kw), [x], dy)
    close(y, y_t, dtype)
    close(g, g_t, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_vs_torch(reduction, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(29)
    a = rand(rng, (3, 2, 4), dtype)
    b = rand(rng, (3, 2, 4), dtype)
    y0 = torch.nn.functional.mse_loss(_tt(torch, a), _tt(torch, b), reduction=reduction)
    dy = rand(rng, tuple(y0.shape), dtype)
    y_t, g_t = _torch_backward(torch, lambda u, v: torch.nn.functional.mse_loss(u, v, reduction=reduction), [a, b], dy)
    y, g = backward(lambda u, v: F.mse_loss(u, v, reduction=reduction), [a, b], dy)
    close(y, y_t, dtype)
    for got, ref in zip(g, g_t):
        close(got, ref, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_vs_torch(shape, training, dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(30)
    C = shape[1]
    x = rand(rng, shape, dtype, scale=3.0) - 1.0
    w, b = rand(rng, (C,), dtype), rand(rng, (C,), dtype)
    rm, rv = rand(rng, (C,), dtype), (rng.random(C) + 0.5).astype(dtype)
    dy = rand(rng, shape, dtype)
    rm_t, rv_t = _tt(torch, rm), _tt(torch, rv)
    y_t, g_t = _torch_backward(
        torch, lambda a, g, h: torch.nn.functional.batch_norm(a, rm_t, rv_t, g, h, training=training, momentum=0.3,
                                                              eps=1e-4), [x, w, b], dy)
    rm_d, rv_d = dl(rm), dl(rv)
    y, g = backward(lambda a, gg, h: F.batch_norm(a, rm_d, rv_d, gg, h, training=training, momentum=0.3, eps=1e-4),
                    [x, w, b], dy)
    close(y, y_t, dtype)
    for name, got, ref in zip(["input", "weight", "bias"], g, g_t):
        close(got, ref, dtype, err_msg=f"{name} grad")
    close(rm_d, rm_t.numpy(), dtype, err_msg="running_mean")
    close(rv_d, rv_t.numpy(), dtype, err_msg="running_var")
    # a second step (eval after training uses the updated running stats)
    x2 = rand(rng, shape, dtype)
    ref = torch.nn.functional.batch_norm(_tt(torch, x2), rm_t, rv_t, _tt(torch, w), _tt(torch, b)).numpy()
    close(F.batch_norm(dl(x2), rm_d, rv_d, dl(w), dl(b)), ref, dtype)


@pytest.mark.torch
@pytest.mark.parametrize("slope", [0.01, 0.3])
def test_leaky_relu_vs_torch(slope):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(31)
    x = rand(rng, (4, 6), F32)
    x[0, 0] = 0.0
    dy = rand(rng, x.shape, F32)
    y_t, (g_t,) = _torch_backward(torch, lambda a: torch.nn.functional.leaky_relu(a, slope), [x], dy)
    y, (g,) = backward(lambda a: F.leaky_relu(a, slope), [x], dy)
    close(y, y_t, F32)
    close(g, g_t, F32)


def _random_conv_config(rng):
    groups = int(rng.choice([1, 1, 2, 3]))
    Cg, Kg = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    R, S = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    pad = (int(rng.integers(0, 4)), int(rng.integers(0, 4)))
    H = max(1, dil[0] * (R - 1) + 1 - 2 * pad[0]) + int(rng.integers(0, 7))
    W = max(1, dil[1] * (S - 1) + 1 - 2 * pad[1]) + int(rng.integers(0, 7))
    N = int(rng.integers(1, 4))
    return (N, Cg * groups, H, W, Kg * groups, R, S, stride, pad, dil, groups)


@pytest.mark.torch
@pytest.mark.parametrize("seed", range(6))
def test_conv2d_random_configs_vs_torch(seed):
    """Fuzz: random stride/padding/dilation/groups/kernel shapes, float64, forward and all gradients."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1000 + seed)
    for _ in range(12):
        cfg = _random_conv_config(rng)
        N, C, H, W, K, R, S, stride, padding, dilation, groups = cfg
        x = rand(rng, (N, C, H, W), F64)
        w = rand(rng, (K, C // groups, R, S), F64)
        b = rand(rng, (K,), F64)
        kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        y0 = torch.nn.functional.conv2d(_tt(torch, x), _tt(torch, w), _tt(torch, b), **kw)
        dy = rand(rng, tuple(y0.shape), F64)
        y_t, g_t = _torch_backward(torch, lambda a, c, d: torch.nn.functional.conv2d(a, c, d, **kw), [x, w, b], dy)
        y, g = backward(lambda a, c, d: F.conv2d(a, c, d, **kw), [x, w, b], dy)
        close(y, y_t, F64, err_msg=f"forward {cfg}")
        for name, got, ref in zip(["input", "weight", "bias"], g, g_t):
            close(got, ref, F64, err_msg=f"{name} gradient {cfg}")


@pytest.mark.torch
@pytest.mark.parametrize("seed", range(4))
def test_pooling_random_configs_vs_torch(seed):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2000 + seed)
    tf = torch.nn.functional
    for _ in range(15):
        kh, kw_ = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        pad = (int(rng.integers(0, kh // 2 + 1)), int(rng.integers(0, kw_ // 2 + 1)))
        dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        ceil_mode = bool(rng.integers(0, 2))
        cip = bool(rng.integers(0, 2))
        H = max(1, dil[0] * (kh - 1) + 1 - 2 * pad[0]) + int(rng.integers(0, 6))
        W = max(1, dil[1] * (kw_ - 1) + 1 - 2 * pad[1]) + int(rng.integers(0, 6))
        x = rng.permutation(2 * 2 * H * W).reshape(2, 2, H, W).astype(F64) / 7.0 - 3.0
        cfg = ((kh, kw_), stride, pad, dil, ceil_mode, cip, (H, W))
        mk = dict(stride=stride, padding=pad, dilation=dil, ceil_mode=ceil_mode)
        y0 = tf.max_pool2d(_tt(torch, x), (kh, kw_), **mk)
        dy = rand(rng, tuple(y0.shape), F64)
        y_t, (g_t,) = _torch_backward(torch, lambda a: tf.max_pool2d(a, (kh, kw_), **mk), [x], dy)
        y, (g,) = backward(lambda a: F.max_pool2d(a, (kh, kw_), **mk), [x], dy)
        close(y, y_t, F64, err_msg=f"max_pool2d {cfg}")
        if np.isfinite(y_t).all():  # a window entirely in the padding (-inf) has no arg-max to compare
            close(g, g_t, F64, err_msg=f"max_pool2d grad {cfg}")
        ak = dict(stride=stride, padding=pad, ceil_mode=ceil_mode, count_include_pad=cip)
        y0 = tf.avg_pool2d(_tt(torch, x), (kh, kw_), **ak)
        dy = rand(rng, tuple(y0.shape), F64)
        y_t, (g_t,) = _torch_backward(torch, lambda a: tf.avg_pool2d(a, (kh, kw_), **ak), [x], dy)
        y, (g,) = backward(lambda a: F.avg_pool2d(a, (kh, kw_), **ak), [x], dy)
        close(y, y_t, F64, err_msg=f"avg_pool2d {cfg}")
        close(g, g_t, F64, err_msg=f"avg_pool2d grad {cfg}")


def test_broadcast_upstream_gradients():
    """``loss = (op(x) * c).sum()`` feeds the backward a stride-0 (expanded) gradient."""
    rng = np.random.default_rng(36)
    x = rand(rng, (2, 4, 7, 6), F64)
    w = rand(rng, (6, 2, 3, 2), F64)
    xt, wt = leaf(x), leaf(w)
    (F.conv2d(xt, wt, stride=(2, 1), padding=1, groups=2) * 0.5).sum().backward()
    y_ref = naive_conv2d(x, w, None, (2, 1), 1, 1, 2)
    _, dx_ref, dw_ref, _ = naive_conv2d(x, w, None, (2, 1), 1, 1, 2, dy=np.full(y_ref.shape, 0.5))
    close(xt.grad, dx_ref, F64)
    close(wt.grad, dw_ref, F64)
    xp = rng.permutation(2 * 4 * 7 * 6).reshape(2, 4, 7, 6).astype(F64)
    xt = leaf(xp)
    F.max_pool2d(xt, 3, stride=2, padding=1).sum().backward()
    y_ref, _, dx_ref = naive_max_pool2d(xp, 3, 2, 1, 1, False, dy=np.ones((2, 4, 4, 3)))
    close(xt.grad, dx_ref, F64)
    xt = leaf(x)
    F.avg_pool2d(xt, 3, stride=2, padding=1, count_include_pad=False).sum().backward()
    _, dx_ref = naive_avg_pool2d(x, 3, 2, 1, False, False, dy=np.ones((2, 4, 4, 3)))
    close(xt.grad, dx_ref, F64)
    logits = rand(rng, (5, 3), F64)
    t = np.array([0, 2, 1, 1, 0])
    xt = leaf(logits)
    F.cross_entropy(xt, dl(t), reduction="none").sum().backward()
    _, grad_rows = naive_cross_entropy_rows(logits, t, 0.0)
    close(xt.grad, grad_rows, F64)
    xt = leaf(logits)
    F.softmax(xt, 0).sum().backward()  # d/dx of a constant (columns sum to 1): zero
    close(xt.grad, np.zeros((5, 3)), F64, atol_scale=1e-14)


def test_empty_batch_and_1d_linear():
    w = leaf(np.ones((2, 3, 3, 3)))
    x = leaf(np.ones((0, 3, 5, 5)))
    y = F.conv2d(x, w)
    assert tuple(y.shape) == (0, 2, 3, 3)
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.zeros((2, 3, 3, 3)))
    assert tuple(x.grad.shape) == (0, 3, 5, 5)
    rng = np.random.default_rng(37)
    v, m, b = rng.standard_normal(5), rng.standard_normal((4, 5)), rng.standard_normal(4)
    close(F.linear(dl(v), dl(m), dl(b)), m @ v + b, F64)


def test_max_pool2d_propagates_nan():
    x = np.array([[[[1.0, np.nan, 0.0], [3.0, 4.0, 2.0], [5.0, 6.0, 7.0]]]])
    y = F.max_pool2d(dl(x), 2, stride=1).numpy()
    assert np.isnan(y[0, 0, 0, 0]) and np.isnan(y[0, 0, 0, 1])
    np.testing.assert_array_equal(y[0, 0, 1], [6.0, 7.0])


# ----------------------------------------------------------------------------------------
# 4. numerical robustness
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_huge_logits_is_finite(eps, dtype):
    x = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4 + 1.0], [5e3, 1e4, -1e4]], dtype)
    t = np.array([1, 2, 1])
    xt = leaf(x)
    loss = F.cross_entropy(xt, dl(t), label_smoothing=eps)
    loss.backward()
    assert math.isfinite(loss.item())
    assert np.isfinite(xt.grad.numpy()).all()
    per, grad_rows = naive_cross_entropy_rows(x, t, eps)
    close(loss, per.mean(), dtype)
    close(xt.grad, grad_rows / 3, dtype)
    # exact: row 0 has loss 2e4 (target is -1e4 below the max), row 1 log(1 + 2 e^-1)
    if eps == 0.0:
        assert per[0] == pytest.approx(2e4) and per[1] == pytest.approx(math.log(1 + 2 * math.exp(-1)))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_softmax_huge_logits_finite_and_normalised(dtype):
    x = np.array([[1e4, 1e4 - 1, -1e4], [-1e4, -1e4, -1e4], [800.0, 0.0, -800.0]], dtype)
    s = F.softmax(dl(x), 1).numpy()
    assert np.isfinite(s).all()
    np.testing.assert_allclose(s.sum(1), 1.0, rtol=1e-6)
    close(s, naive_softmax(x, 1), dtype)
    ls = F.log_softmax(dl(x), 1).numpy()
    assert np.isfinite(ls).all()
    close(ls, naive_softmax(x, 1, log=True), dtype)
    # -inf entries (masks) get probability 0
    m = np.array([[0.0, -np.inf, 1.0]], dtype)
    s = F.softmax(dl(m), 1).numpy()
    np.testing.assert_allclose(s, [[1 / (1 + math.e), 0.0, math.e / (1 + math.e)]], rtol=1e-6)


# ----------------------------------------------------------------------------------------
# 5. thread-count independence
# ----------------------------------------------------------------------------------------

def _thread_workload(seed):
    rng = np.random.default_rng(seed)
    out = {}
    for name, (xs, ws, kw) in {
        "conv": ((8, 8, 16, 16), (16, 8, 3, 3), dict(padding=1)),
        "conv_s2_groups": ((8, 8, 16, 16), (16, 4, 3, 3), dict(stride=2, padding=1, groups=2)),
        "conv_batch1": ((1, 16, 40, 40), (16, 16, 3, 3), dict(padding=1)),
    }.items():
        x = rand(rng, xs, F32)
        w = rand(rng, ws, F32)
        b = rand(rng, (ws[0],), F32)
        y = F.conv2d(dl(x), dl(w), dl(b), **kw)
        dy = rand(rng, tuple(y.shape), F32)
        y, (dx, dw, db) = backward(lambda a, c, d: F.conv2d(a, c, d, **kw), [x, w, b], dy)
        out.update({f"{name}_y": y, f"{name}_dx": dx, f"{name}_dw": dw, f"{name}_db": db})
    x = rand(rng, (8, 16, 32, 32), F32)
    dy = rand(rng, (8, 16, 16, 16), F32)
    out["maxpool_y"], (out["maxpool_dx"],) = backward(lambda a: F.max_pool2d(a, 3, stride=2, padding=1), [x], dy)
    out["avgpool_y"], (out["avgpool_dx"],) = backward(lambda a: F.avg_pool2d(a, 2), [x], dy)
    logits = rand(rng, (4096, 100), F32, scale=3.0)
    t = rng.integers(0, 100, size=4096)
    out["ce"], (out["ce_dx"],) = backward(lambda a: F.cross_entropy(a, dl(t), label_smoothing=0.1), [logits],
                                          np.array(1.0, F32))
    out["ce_none"] = F.cross_entropy(dl(logits), dl(t), reduction="none").numpy()
    out["softmax"] = F.softmax(dl(logits), 0).numpy()
    out["hinge"] = F.multiclass_hinge_loss(dl(logits), dl(t), reduction="none").numpy()
    return out


def test_nn_ops_independent_of_thread_count(restore_threads):
    dlcore.set_num_threads(1)
    r1 = _thread_workload(0)
    dlcore.set_num_threads(2)
    assert dlcore.get_num_threads() == 2
    r2 = _thread_workload(0)
    for k in r1:
        a, b = np.asarray(r1[k], F64), np.asarray(r2[k], F64)
        scale = max(1e-30, float(np.abs(a).max()))
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * scale, err_msg=k)


@pytest.mark.torch
def test_conv2d_two_threads_vs_torch(restore_threads):
    torch = pytest.importorskip("torch")
    dlcore.set_num_threads(2)
    rng = np.random.default_rng(32)
    x = rand(rng, (8, 8, 16, 16), F32)
    w = rand(rng, (16, 8, 3, 3), F32)
    dy = rand(rng, (8, 16, 16, 16), F32)
    y_t, g_t = _torch_backward(torch, lambda a, c: torch.nn.functional.conv2d(a, c, padding=1), [x, w], dy)
    y, g = backward(lambda a, c: F.conv2d(a, c, padding=1), [x, w], dy)
    close(y, y_t, F32)
    close(g[0], g_t[0], F32)
    close(g[1], g_t[1], F32)


# ----------------------------------------------------------------------------------------
# 6. bad input
# ----------------------------------------------------------------------------------------

def _r(*shape, dtype=dlcore.float32):
    return dlcore.randn(*shape).to(dtype)


def _i(vals):
    return dlcore.tensor(vals, dtype=dlcore.int64)


@pytest.mark.parametrize("fn,exc,match", [
    # wrong rank
    (lambda: F.conv2d(_r(5, 5), _r(4, 1, 3, 3)), ValueError, r"conv2d.*\(5, 5\)"),
    (lambda: F.conv2d(_r(1, 2, 3, 5, 5), _r(4, 2, 3, 3)), ValueError, r"conv2d.*\(1, 2, 3, 5, 5\)"),
    (lambda: F.conv2d(_r(2, 3, 5, 5), _r(4, 3, 3)), ValueError, r"conv2d.*weight.*\(4, 3, 3\)"),
    (lambda: F.max_pool2d(_r(5, 5), 2), ValueError, r"max_pool2d.*\(5, 5\)"),
    (lambda: F.avg_pool2d(_r(7), 2), ValueError, r"avg_pool2d.*\(7,\)"),
    (lambda: F.batch_norm(_r(2, 3, 4, 4, 4), None, None, training=True), ValueError, r"batch_norm.*\(2, 3, 4, 4, 4\)"),
    (lambda: F.batch_norm(_r(2, 3, 4, 4), _r(4), _r(4)), ValueError, r"running_mean.*\(4,\).*3"),
    # channel mismatch names both shapes
    (lambda: F.conv2d(_r(2, 3, 5, 5), _r(4, 2, 3, 3)), ValueError, r"\(2, 3, 5, 5\).*\(4, 2, 3, 3\)"),
    (lambda: F.conv2d(_r(2, 4, 5, 5), _r(4, 4, 3, 3), groups=2), ValueError, r"\(2, 4, 5, 5\).*\(4, 4, 3, 3\)"),
    # kernel larger than the padded input
    (lambda: F.conv2d(_r(2, 3, 5, 5), _r(4, 3, 7, 7)), ValueError, r"7x7.*5x5"),
    (lambda: F.conv2d(_r(2, 3, 5, 5), _r(4, 3, 3, 3), dilation=3), ValueError, r"7x7.*5x5"),
    (lambda: F.max_pool2d(_r(1, 1, 3, 3), 4), ValueError, r"4x4.*3x3"),
    (lambda: F.avg_pool2d(_r(1, 1, 3, 4), (2, 5)), ValueError, r"2x5.*3x4"),
    (lambda: F.max_pool2d(_r(1, 1, 4, 4), 2, padding=2), ValueError, r"padding.*2"),
    (lambda: F.adaptive_avg_pool2d(_r(1, 1, 5, 4), 2), ValueError, r"\(2, 2\).*\(5, 4\)"),
    (lambda: F.softmax(_r(2, 3), 2), IndexError, r"dim 2"),
    (lambda: F.batch_norm(_r(4, 3), None, None), ValueError, r"running_mean"),
    # non-positive stride
    (lambda: F.conv2d(_r(2, 3, 5, 5), _r(4, 3, 3, 3), stride=0), ValueError, r"stride.*0"),
    (lambda: F.conv2d(_r(2, 3, 5, 5), _r(4, 3, 3, 3), stride=(1, -2)), ValueError, r"stride.*-2"),
    (lambda: F.max_pool2d(_r(1, 1, 4, 4), 2, stride=0), ValueError, r"stride.*0"),
    (lambda: F.avg_pool2d(_r(1, 1, 4, 4), 2, stride=-1), ValueError, r"stride.*-1"),
    (lambda: F.conv2d(_r(2, 3, 5, 5), _r(4, 3, 3, 3), padding=-1), ValueError, r"padding.*-1"),
    (lambda: F.conv2d(_r(2, 3, 5, 5), _r(4, 3, 3, 3), padding="full"), ValueError, r"full"),
    (lambda: F.conv2d(_r(2, 3, 5, 5), _r(4, 3, 3, 3), padding="same", stride=2), ValueError, r"same.*stride"),
    # groups that do not divide the channels
    (lambda: F.conv2d(_r(2, 4, 5, 5), _r(6, 2, 3, 3), groups=3), ValueError, r"groups=3.*4"),
    (lambda: F.conv2d(_r(2, 4, 5, 5), _r(3, 2, 3, 3), groups=2), ValueError, r"groups=2.*3"),
    (lambda: F.conv2d(_r(2, 4, 5, 5), _r(4, 4, 3, 3), groups=0), ValueError, r"groups.*0"),
    # bias
    (lambda: F.conv2d(_r(2, 3, 5, 5), _r(4, 3, 3, 3), _r(5)), ValueError, r"bias.*\(5,\).*4"),
    (lambda: F.linear(_r(2, 3), _r(4, 5)), ValueError, r"\(2, 3\).*\(4, 5\)"),
    # float targets
    (lambda: F.cross_entropy(_r(3, 4), dlcore.tensor([0.0, 1.0, 2.0])), TypeError, r"int64.*float32"),
    (lambda: F.nll_loss(_r(3, 4), dlcore.tensor([0.0, 1.0, 2.0])), TypeError, r"int64"),
    (lambda: F.multiclass_hinge_loss(_r(3, 4), dlcore.tensor([0.0, 1.0, 2.0])), TypeError, r"int64"),
    (lambda: F.multi_margin_loss(_r(3, 4), dlcore.tensor([0.0, 1.0, 2.0], dtype=dlcore.float64)), TypeError,
     r"int64.*float64"),
    # targets out of range: name the label and the number of classes
    (lambda: F.cross_entropy(_r(3, 4), _i([0, 4, 2])), IndexError, r"\b4\b.*4 classes"),
    (lambda: F.cross_entropy(_r(3, 4), _i([0, -1, 2])), IndexError, r"-1.*4 classes"),
    (lambda: F.cross_entropy(_r(5), dlcore.tensor(5)), IndexError, r"5.*5 classes"),
    (lambda: F.nll_loss(_r(3, 4), _i([9, 1, 2])), IndexError, r"9.*4 classes"),
    (lambda: F.multiclass_hinge_loss(_r(2, 3), _i([0, 3])), IndexError, r"3.*3 classes"),
    (lambda: F.multi_margin_loss(_r(2, 3), _i([7, 0])), IndexError, r"7.*3 classes"),
    (lambda: F.cross_entropy(_r(2, 3, 4), _i([[0, 1, 2, 3], [3, 2, 1, 0]])), IndexError, r"3.*3 classes"),
    # batch mismatch names shapes
    (lambda: F.cross_entropy(_r(3, 4), _i([0, 1])), ValueError, r"\(3, 4\).*\(2,\)"),
    (lambda: F.nll_loss(_r(3, 4), _i([0, 1, 2, 3])), ValueError, r"\(3, 4\).*\(4,\)"),
    (lambda: F.multiclass_hinge_loss(_r(3, 4), _i([[0], [1], [2]])), ValueError, r"\(3, 4\).*\(3, 1\)"),
    (lambda: F.multi_margin_loss(_r(2, 4), _i([0, 1, 2])), ValueError, r"\(2, 4\).*\(3,\)"),
    # bad reduction
    (lambda: F.cross_entropy(_r(3, 4), _i([0, 1, 2]), reduction="avg"), ValueError, r"avg"),
    (lambda: F.nll_loss(_r(3, 4), _i([0, 1, 2]), reduction="elementwise_mean"), ValueError, r"elementwise_mean"),
    (lambda: F.multiclass_hinge_loss(_r(3, 4), _i([0, 1, 2]), reduction="Mean"), ValueError, r"Mean"),
    (lambda: F.multi_margin_loss(_r(3, 4), _i([0, 1, 2]), reduction=""), ValueError, r"reduction"),
    (lambda: F.mse_loss(_r(3), _r(3), reduction="batchmean"), ValueError, r"batchmean"),
    # other bad values
    (lambda: F.multi_margin_loss(_r(3, 4), _i([0, 1, 2]), p=3), ValueError, r"\bp\b.*3"),
    (lambda: F.cross_entropy(_r(3, 4), _i([0, 1, 2]), label_smoothing=1.5), ValueError, r"1\.5"),
    (lambda: F.dropout(_r(3), p=1.5), ValueError, r"1\.5"),
    (lambda: F.dropout(_r(3), p=-0.1), ValueError, r"-0\.1"),
    (lambda: F.mse_loss(_r(3, 2), _r(2, 3)), ValueError, r"\(3, 2\).*\(2, 3\)"),
    (lambda: F.mse_loss(_r(3), _r(3, 1)), ValueError, r"\(3,\).*\(3, 1\)"),
    # dtypes
    (lambda: F.conv2d(_r(1, 1, 3, 3), _r(1, 1, 2, 2, dtype=dlcore.float64)), TypeError, r"float32.*float64"),
    (lambda: F.conv2d(_r(1, 1, 3, 3).long(), _r(1, 1, 2, 2).long()), TypeError, r"int64"),
    (lambda: F.max_pool2d(_i([[[[1, 2], [3, 4]]]]), 2), TypeError, r"int64"),
    (lambda: F.cross_entropy(_i([[1, 2]]), _i([0])), TypeError, r"int64"),
])
def test_bad_input_raises_clear_errors(fn, exc, match):
    with pytest.raises(exc, match=match):
        fn()


def test_bad_input_has_no_side_effects_on_running_stats():
    rm, rv = dlcore.zeros(3), dlcore.ones(3)
    with pytest.raises(ValueError, match=r"more than 1 value per channel"):
        F.batch_norm(_r(1, 3), rm, rv, training=True)
    np.testing.assert_array_equal(rm.numpy(), 0)
    np.testing.assert_array_equal(rv.numpy(), 1)


# ----------------------------------------------------------------------------------------
# 7. dropout
# ----------------------------------------------------------------------------------------

def test_dropout_reproducible_with_manual_seed():
    x = dlcore.ones(1000)
    dlcore.manual_seed(123)
    a = F.dropout(x, 0.4).numpy()
    b = F.dropout(x, 0.4).numpy()
    dlcore.manual_seed(123)
    c = F.dropout(x, 0.4).numpy()
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, b), "two consecutive draws gave the same mask"
    dlcore.manual_seed(124)
    assert not np.array_equal(F.dropout(x, 0.4).numpy(), a)


@pytest.mark.parametrize("dtype", [dlcore.float32, dlcore.float64])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_statistics(p, dtype):
    dlcore.manual_seed(7)
    n = 200_000
    rng = np.random.default_rng(33)
    xv = (rng.random(n) + 0.5).astype(F32 if dtype == dlcore.float32 else F64)  # no zeros in the input
    y = F.dropout(dlcore.from_numpy(xv), p).numpy()
    assert y.dtype == xv.dtype and y.shape == xv.shape
    zero = y == 0
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(zero.mean() - p) < 6 * sd, f"fraction of zeros {zero.mean()} for p={p}"
    # kept values are scaled by 1/(1-p)
    np.testing.assert_allclose(y[~zero], xv[~zero] / (1 - p), rtol=1e-6)
    # expectation preserved
    ones = F.dropout(dlcore.ones(n, dtype=dtype), p).numpy()
    assert abs(ones.mean() - 1.0) < 6 * math.sqrt(p / (1 - p) / n)


def test_dropout_gradient_is_the_mask_scaling():
    rng = np.random.default_rng(34)
    xv = rng.random((50, 40)) + 0.5
    dy = rng.standard_normal((50, 40))
    dlcore.manual_seed(3)
    x = leaf(xv)
    y = F.dropout(x, 0.3)
    y.backward(dl(dy))
    mask = (y.numpy() != 0) / 0.7
    assert 0 < (y.numpy() == 0).sum() < y.numpy().size
    np.testing.assert_allclose(x.grad.numpy(), dy * mask, rtol=1e-12)
    np.testing.assert_allclose(y.numpy(), xv * mask, rtol=1e-12)


def test_dropout_identity_cases():
    rng = np.random.default_rng(35)
    xv = rng.standard_normal((4, 5))
    for y in (F.dropout(dl(xv), 0.5, training=False), F.dropout(dl(xv), 0.0), F.dropout(dl(xv), 1.0, False)):
        np.testing.assert_array_equal(y.numpy(), xv)
    np.testing.assert_array_equal(F.dropout(dl(xv), 1.0).numpy(), np.zeros((4, 5)))
    # eval mode passes gradients unchanged
    x = leaf(xv)
    F.dropout(x, 0.5, training=False).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((4, 5)))
