"""Property tests of the differentiable functions (hypothesis, NumPy backend): on drawn shapes —
0- and 1-size axes, broadcasting pairs —, float32 and float64, and drawn values — large
magnitudes, ±0, ties —, each function's forward is NumPy's, its gradient is its docstring's
formula summed back to each input's shape in that input's dtype, and the subgradients at kinks
and ties are the documented ones. `tests/test_autodiff.py`'s table checks each function against
finite differences on fixed rows; these vary the rows."""

import warnings

import numpy as np
import pytest

import xdl

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

DTYPES = st.sampled_from([np.float32, np.float64])
TOLERANCE = {np.dtype(np.float32): 2e-6, np.dtype(np.float64): 1e-12}
# the same examples on every run (CI stays green or red), few enough for the suite's pace
quick = settings(max_examples=40, deadline=None, derandomize=True)


def arrays(dtype, shape, bound):
    """Values of ``dtype`` in [−bound, bound] (bound as the dtype holds it), −0.0 and 0.0 among them."""
    bound = float(np.dtype(dtype).type(bound))
    return hnp.arrays(dtype, shape, elements=st.floats(-bound, bound, width=np.dtype(dtype).itemsize * 8))


def run(f, *values, gy=None):
    """(f's output, each input's gradient) for leaves of ``values``, backward from ``gy`` (ones)."""
    leaves = [xdl.tensor(v, requires_grad=True) for v in values]
    out = f(*leaves)
    out.backward(np.ones(out.shape, out.dtype) if gy is None else gy)
    return out, [leaf.grad for leaf in leaves]


def summed_to(g, shape):
    """``g`` summed over the axes broadcasting added or stretched (NumPy's reference of `unbroadcast`)."""
    g = g.sum(axis=tuple(range(g.ndim - len(shape))))
    return g.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)


@st.composite
def broadcast_pairs(draw, bound):
    dtype = draw(DTYPES)
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, min_side=0, max_side=3)).input_shapes
    return draw(arrays(dtype, shapes[0], bound)), draw(arrays(dtype, shapes[1], bound))


# ∂(a ∘ b)/∂a and ∂(a ∘ b)/∂b, on the broadcast operands, as the functions' docstrings give them
ARITHMETIC = {"add": (np.add, lambda a, b: (np.ones_like(a), np.ones_like(b))),
              "sub": (np.subtract, lambda a, b: (np.ones_like(a), -np.ones_like(b))),
              "mul": (np.multiply, lambda a, b: (b, a)),
              "div": (np.divide, lambda a, b: (1 / b, -a / b / b))}


@quick
@pytest.mark.parametrize("name", ARITHMETIC)
@given(pair=broadcast_pairs(bound=1e3))
def test_arithmetic_is_numpys_and_its_gradients_are_summed_back_to_each_inputs_shape(name, pair):
    """y = a ∘ b broadcast as NumPy does; ∂L/∂a = Σ over the broadcast axes of ∂y/∂a, of a's shape and
    dtype (and b's alike)."""
    a, b = pair
    numpy_op, partials = ARITHMETIC[name]
    with np.errstate(all="ignore"):  # (a quotient by 0: inf and NaN, as NumPy's)
        out, (ga, gb) = run(getattr(xdl, name), a, b)
        expected = [summed_to(p, x.shape) for p, x in zip(partials(*np.broadcast_arrays(a, b)), (a, b))]
        np.testing.assert_array_equal(out.numpy(), numpy_op(a, b))
    assert out.dtype == a.dtype and (ga.shape, gb.shape) == (a.shape, b.shape) and ga.dtype == gb.dtype == a.dtype
    np.testing.assert_allclose(ga, expected[0], rtol=TOLERANCE[a.dtype])
    np.testing.assert_allclose(gb, expected[1], rtol=TOLERANCE[a.dtype])


@quick
@given(a=arrays(np.float32, (3,), 3e38), b=st.floats(float(np.float32(1e-30)), float(np.float32(1e30)), width=32),
       sign=st.sampled_from([1, -1]))
def test_a_quotients_gradients_are_finite_where_the_true_ones_are(a, b, sign):
    """∂(a/b)/∂b = −(a/b)/b, as PyTorch computes it: −a/b² overflowed b² (b = 1e-25 in float32: −inf
    for −1e25) or flushed it to 0 (b = 1e30: 0 for −1e-30) where the gradient itself is a float32."""
    b = np.full(3, sign * b, np.float32)
    with np.errstate(over="ignore"):  # (a quotient or a gradient beyond float32: inf, as NumPy's)
        _, (ga, gb) = run(lambda x, y: x / y, a, b)
    exact = -(a.astype(np.float64) / b) / b  # float64 holds every one of these
    finite = np.abs(exact) < np.finfo(np.float32).max
    np.testing.assert_allclose(gb[finite], exact[finite], rtol=1e-6, atol=1e-44)  # (atol: float32's subnormals)
    np.testing.assert_allclose(ga, 1 / b.astype(np.float64), rtol=1e-6)


@quick
@given(pair=broadcast_pairs(bound=8.0))
def test_a_powers_gradients_are_its_formula_with_the_documented_values_at_zero(pair):
    """∂(aᵇ)/∂a = b·aᵇ⁻¹ (0 where b = 0), ∂(aᵇ)/∂b = aᵇ·ln a (0 at a = 0 for b ≥ 0), on a ≥ 0 (zeros
    drawn)."""
    a, b = pair
    a = np.abs(a)
    with np.errstate(all="ignore"):
        out, (ga, gb) = run(lambda x, y: x ** y, a, b)
        A, B = np.broadcast_arrays(a, b)
        expected_a = np.where(B == 0, 0, B * A ** (B - 1))
        expected_b = np.where((A == 0) & (B >= 0), 0, A ** B * np.log(A))
        np.testing.assert_array_equal(out.numpy(), a ** b)
    assert ga.shape == a.shape and gb.shape == b.shape and ga.dtype == gb.dtype == a.dtype
    np.testing.assert_allclose(ga, summed_to(expected_a, a.shape), rtol=1e-5)
    np.testing.assert_allclose(gb, summed_to(expected_b, b.shape), rtol=1e-5)


# y = f(x) as NumPy computes it, and ∂y/∂x from x and y: at 0 relu's and abs's subgradient is 0,
# leaky_relu's its slope
ELEMENTWISE = {"exp": (np.exp, lambda x, y: y), "tanh": (np.tanh, lambda x, y: 1 - y * y),
               "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), lambda x, y: y * (1 - y)),
               "abs": (np.abs, lambda x, y: np.sign(x)), "neg": (np.negative, lambda x, y: -np.ones_like(x)),
               "relu": (lambda x: np.maximum(x, 0), lambda x, y: (x > 0).astype(x.dtype)),
               "leaky_relu": (lambda x: np.where(x > 0, x, x * x.dtype.type(0.01)),
                              lambda x, y: np.where(x > 0, 1, x.dtype.type(0.01))),
               "log": (np.log, lambda x, y: 1 / x), "sqrt": (np.sqrt, lambda x, y: 1 / (2 * y))}


@quick
@pytest.mark.parametrize("name", ELEMENTWISE)
@given(dtype=DTYPES, shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4), data=st.data())
def test_elementwise_functions_and_their_subgradients_at_zero(name, dtype, shape, data):
    """Forward as NumPy's within rounding, the gradient the formula's, at ±0 and at large magnitudes too."""
    forward, derivative = ELEMENTWISE[name]
    x = data.draw(hnp.arrays(dtype, shape, elements=st.one_of(st.sampled_from([0.0, -0.0, 1.0, -1.0]),
                                                              st.floats(-80, 80, width=np.dtype(dtype).itemsize * 8))))
    if name in ("log", "sqrt"):
        x = np.abs(x) + dtype(1e-3)  # (their domain)
    out, (g,) = run(getattr(xdl, name), x)
    with np.errstate(over="ignore"):
        y = forward(x.astype(np.float64)).astype(dtype)
    np.testing.assert_allclose(out.numpy(), y, rtol=4 * TOLERANCE[x.dtype], atol=1e-30)
    assert out.dtype == g.dtype == x.dtype and g.shape == x.shape
    np.testing.assert_allclose(g, derivative(x, out.numpy()), rtol=4 * TOLERANCE[x.dtype], atol=1e-30)


@st.composite
def reductions(draw, empty: bool):
    """(x, axis, keepdims): axis None, one axis (negative too) or a sequence of distinct axes."""
    dtype = draw(DTYPES)
    x = draw(arrays(dtype, draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0 if empty else 1, max_side=4)),
                    1e3))
    axes = st.lists(st.integers(-x.ndim, x.ndim - 1), unique_by=lambda a: a % x.ndim, max_size=x.ndim)
    axis = draw(st.none() | st.integers(-x.ndim, x.ndim - 1) | axes.map(tuple)) if x.ndim else None
    return x, axis, draw(st.booleans())


@quick
@given(case=reductions(empty=True))
def test_sum_and_mean_over_any_axes(case):
    """Σ and its mean over the axes (empty ones too: Σ = 0), ∂/∂x = 1 and 1/n broadcast back, in x's dtype."""
    x, axis, keepdims = case
    out, (g,) = run(lambda t: t.sum(axis=axis, keepdims=keepdims), x)
    np.testing.assert_allclose(out.numpy(), x.sum(axis=axis, keepdims=keepdims), rtol=1e-5, atol=1e-3)
    assert out.dtype == g.dtype == x.dtype and g.shape == x.shape and np.all(g == 1)
    n = x.size // max(np.size(x.sum(axis=axis)), 1) if x.size else 0
    if n:
        out, (g,) = run(lambda t: t.mean(axis=axis, keepdims=keepdims), x)
        np.testing.assert_allclose(out.numpy(), x.mean(axis=axis, keepdims=keepdims), rtol=1e-5, atol=1e-5)
        assert out.dtype == g.dtype == x.dtype
        np.testing.assert_allclose(g, np.full(x.shape, 1 / n), rtol=TOLERANCE[x.dtype])


@quick
@pytest.mark.parametrize("name", ["max", "min"])
@given(case=reductions(empty=False), ties=st.booleans())
def test_max_and_min_split_the_gradient_evenly_between_ties(name, case, ties):
    """∂ maxₐₓᵢₛ x/∂x = [x = max]/#ties: each reduced group's gradient sums to 1 (±0 are one tie)."""
    x, axis, keepdims = case
    if ties:
        x = np.round(x / 500) * x.dtype.type(0.5)  # few values: ties, and −0.0 beside 0.0
    out, (g,) = run(lambda t: getattr(t, name)(axis=axis, keepdims=keepdims), x)
    np.testing.assert_array_equal(out.numpy(), getattr(x, name)(axis=axis, keepdims=keepdims))
    reached = x == getattr(x, name)(axis=axis, keepdims=True)
    assert out.dtype == g.dtype == x.dtype and g.shape == x.shape
    np.testing.assert_allclose(g, reached / reached.sum(axis=axis, keepdims=True), rtol=TOLERANCE[x.dtype])


@st.composite
def logits(draw):
    """(z (m, C), class indices (m,)): logits up to float32's range apart."""
    dtype, m, c = draw(DTYPES), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    scale = dtype(draw(st.sampled_from([1.0, 1e4, 1e30, 1e38])))
    z = draw(arrays(dtype, (m, c), 1.0)) * scale
    return z, np.array(draw(st.lists(st.integers(0, c - 1), min_size=m, max_size=m)))


def shifted_log_softmax(z):
    """log softmax(z) in float64, as z − max − log Σ e^(z − max) (no overflow, no absorption)."""
    s = z.astype(np.float64) - z.max(axis=-1, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


@quick
@given(case=logits(), one_hot=st.booleans())
def test_softmax_and_cross_entropy_are_exact_at_extreme_logits(case, one_hot):
    """softmax and J = (1/m)·Σ −log softmax(z)[y] as computed in float64, ∂J/∂z = (softmax − y)/m, at
    logits 1e38 apart: no overflow, no NaN, no warning."""
    z, labels = case
    log_p = shifted_log_softmax(z)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, (g,) = run(lambda t: t.softmax(), z)
        np.testing.assert_allclose(out.numpy(), np.exp(log_p), rtol=1e-5, atol=1e-7)
        targets = np.eye(z.shape[1])[labels] if one_hot else labels
        loss, (g,) = run(lambda t: xdl.softmax_cross_entropy(t, targets), z)
    expected = -log_p[np.arange(len(labels)), labels].mean()
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert loss.dtype == g.dtype == z.dtype and loss.shape == ()
    np.testing.assert_allclose(g, (np.exp(log_p) - np.eye(z.shape[1])[labels]) / len(labels), rtol=1e-4, atol=1e-7)


@quick
@given(case=logits())
def test_log_softmax_is_exact_and_finite_at_extreme_logits(case):
    """log softmax(z) as computed in float64, finite where softmax underflows to 0 (log of it was
    −inf); ∂(Σ wᵢⱼ yᵢⱼ)/∂z = w − softmax(z)·Σⱼ w (the nll of PyTorch's log_softmax route: w one-hot)."""
    z, labels = case
    log_p = shifted_log_softmax(z)
    w = -np.eye(z.shape[1], dtype=z.dtype)[labels]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, (g,) = run(lambda t: t.log_softmax(), z, gy=w)
    assert out.dtype == g.dtype == z.dtype and np.isfinite(out.numpy()).all()
    np.testing.assert_allclose(out.numpy(), log_p, rtol=1e-5, atol=1e-6 * np.abs(log_p).max())
    np.testing.assert_allclose(g, w - np.exp(log_p) * w.sum(axis=1, keepdims=True), rtol=1e-4, atol=1e-7)


@quick
@given(case=logits())
def test_binary_cross_entropy_is_exact_at_extreme_logits(case):
    """J = mean(max(z, 0) − z·y + log(1 + e^−|z|)) in float64's value, ∂J/∂z = (σ(z) − y)/n."""
    z, labels = case
    y = np.broadcast_to((labels % 2)[:, None], z.shape).astype(np.float64)
    loss, (g,) = run(lambda t: xdl.sigmoid_binary_cross_entropy(t, y), z)
    z64 = z.astype(np.float64)
    e = np.exp(-np.abs(z64))
    np.testing.assert_allclose(loss.numpy(), (np.maximum(z64, 0) - z64 * y + np.log1p(e)).mean(), rtol=1e-5, atol=1e-30)
    sigma = np.where(z64 >= 0, 1 / (1 + e), e / (1 + e))
    np.testing.assert_allclose(g, (sigma - y) / z.size, rtol=1e-4, atol=1e-30)


@st.composite
def products(draw):
    """(a, b) for a @ b: matrices, vectors on either side or both, and broadcast stacks, with 0-size axes."""
    dtype, (n, k, p) = draw(DTYPES), (draw(st.integers(0, 3)) for _ in range(3))
    stacks = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, min_side=0, max_side=3)).input_shapes
    a, b = draw(st.sampled_from([((n, k), (k, p)), ((k,), (k, p)), ((n, k), (k,)), ((k,), (k,)),
                                 (stacks[0] + (n, k), stacks[1] + (k, p)), ((k,), stacks[1] + (k, p))]))
    return draw(arrays(dtype, a, 10.0)), draw(arrays(dtype, b, 10.0))


@quick
@given(case=products())
def test_matmul_is_numpys_and_its_gradients_are_the_products_summed_over_broadcast_stacks(case):
    """∂L/∂A = ∂L/∂Y·Bᵀ, ∂L/∂B = Aᵀ·∂L/∂Y (a vector as a one-row or one-column matrix), summed to each
    shape."""
    a, b = case
    gy = np.arange((a @ b).size, dtype=a.dtype).reshape((a @ b).shape) % 5 - 2
    out, (ga, gb) = run(lambda x, y: x @ y, a, b, gy=gy)
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-5, atol=1e-3)
    a2, b2 = (a[None] if a.ndim == 1 else a), (b[:, None] if b.ndim == 1 else b)
    g2 = np.reshape(gy, np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1]))
    expected_a = summed_to(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
    expected_b = summed_to(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
    assert out.dtype == ga.dtype == gb.dtype == a.dtype
    np.testing.assert_allclose(ga, expected_a, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(gb, expected_b, rtol=1e-5, atol=1e-3)


@quick
@given(dtype=DTYPES, shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), data=st.data())
def test_indexing_scatters_the_gradient_back_and_adds_repeated_indices(dtype, shape, data):
    """∂L/∂x = ∂L/∂y put back where x[index] read it: slices, ints, None, Ellipsis; integer arrays with
    repeats (added)."""
    x = data.draw(arrays(dtype, shape, 10.0))
    for index in (data.draw(hnp.basic_indices(shape, allow_newaxis=True)),
                  data.draw(hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(max_dims=2, max_side=4)))):
        y = x[index]
        gy = np.arange(1, y.size + 1, dtype=dtype).reshape(y.shape)
        out, (g,) = run(lambda t: t[index], x, gy=gy)
        expected = np.zeros_like(x)
        np.add.at(expected, index, gy)
        np.testing.assert_array_equal(out.numpy(), y)
        np.testing.assert_array_equal(g, expected)
        assert g.dtype == x.dtype
