"""Every differentiable function, gradient-checked in float64 on several shapes, plus graph behaviour."""

import numpy as np
import pytest

import xdl
from xdl.function import Function
from conftest import t64


def away_from_zero(rng, shape):
    """Random values with |x| ≥ 0.1, away from the kinks of abs, relu and max."""
    x = rng.uniform(0.1, 2.0, size=shape)
    return x * rng.choice([-1.0, 1.0], size=shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, size=shape)


def normal(rng, shape):
    return rng.standard_normal(shape)


# name, fn, [(sampler, shape) per input] — shape lists include broadcasting cases
CASES = [
    ("add", lambda a, b: (a + b).sum(), [[(normal, (3, 4)), (normal, (4,))], [(normal, (2, 1, 3)), (normal, (4, 1))]]),
    ("sub", lambda a, b: ((a - b) ** 2).sum(), [[(normal, (3, 4)), (normal, (3, 1))], [(normal, (5,)), (normal, (5,))]]),
    ("mul", lambda a, b: (a * b).sum(), [[(normal, (3, 4)), (normal, (1, 4))], [(normal, (2, 3, 4)), (normal, (3, 1))]]),
    ("div", lambda a, b: (a / b).sum(), [[(normal, (3, 4)), (positive, (4,))], [(normal, (2, 2)), (positive, (2, 2))]]),
    ("pow", lambda a, b: (a ** b).sum(), [[(positive, (3, 4)), (normal, (4,))], [(positive, (5,)), (normal, (1,))]]),
    ("pow_scalar", lambda a: (a ** 3).sum() + (2.0 ** a).sum(), [[(normal, (3, 4))], [(normal, (7,))]]),
    ("neg", lambda a: (-a * a).sum(), [[(normal, (3, 4))], [(normal, (2, 3, 2))]]),
    ("scalar_ops", lambda a: (3.0 - a / 2.0 + 1.5 * a - 1 / (a * a + 1)).sum(), [[(normal, (4, 3))]]),
    ("matmul", lambda a, b: ((a @ b) ** 2).sum(), [[(normal, (3, 4)), (normal, (4, 2))], [(normal, (2, 3, 4)), (normal, (4, 5))],
                                                   [(normal, (4,)), (normal, (4, 3))], [(normal, (3, 4)), (normal, (4,))]]),
    ("exp", lambda a: a.exp().sum(), [[(normal, (3, 4))], [(normal, (6,))]]),
    ("log", lambda a: a.log().sum(), [[(positive, (3, 4))], [(positive, (2, 2, 2))]]),
    ("sqrt", lambda a: a.sqrt().sum(), [[(positive, (3, 4))]]),
    ("abs", lambda a: (a.abs() * a).sum(), [[(away_from_zero, (3, 4))]]),
    ("tanh", lambda a: (a.tanh() ** 2).sum(), [[(normal, (3, 4))], [(normal, (10,))]]),
    ("sigmoid", lambda a: (a.sigmoid() ** 2).sum(), [[(normal, (3, 4))], [(normal, (10,))]]),
    ("relu", lambda a: (a.relu() ** 2).sum(), [[(away_from_zero, (3, 4))]]),
    ("leaky_relu", lambda a: (xdl.functions.leaky_relu(a, 0.1) ** 2).sum(), [[(away_from_zero, (3, 4))]]),
    ("sum_axis", lambda a: (a.sum(axis=0) ** 2).sum() + (a.sum(axis=1, keepdims=True) ** 3).sum(), [[(normal, (3, 4))]]),
    ("sum_axes", lambda a: (a.sum(axis=(0, 2)) ** 2).sum(), [[(normal, (2, 3, 4))]]),
    ("mean", lambda a: (a.mean(axis=1) ** 2).sum() + a.mean() ** 2 + (a.mean(axis=0, keepdims=True) ** 2).sum(), [[(normal, (3, 4))]]),
    ("max", lambda a: (a.max(axis=1) ** 2).sum() + a.max() + (a.max(axis=0, keepdims=True) * 2).sum(), [[(normal, (3, 4))]]),
    ("reshape", lambda a: (a.reshape(4, 3) @ a.reshape((3, 4))).sum(), [[(normal, (2, 6))]]),
    ("transpose", lambda a: ((a.T @ a) ** 2).sum() + (a.reshape(2, 3, 2).transpose(2, 0, 1) ** 3).sum(), [[(normal, (3, 4))]]),
    ("getitem_slice", lambda a: (a[1:, ::2] ** 2).sum() + a[0, 1] * 3, [[(normal, (3, 4))]]),
    ("getitem_int_array", lambda a: (a[[0, 2, 0]] ** 2).sum() + (a[np.array([1, 1]), np.array([0, 3])] ** 3).sum(), [[(normal, (3, 4))]]),
]


@pytest.mark.parametrize("name,fn,shape_sets", CASES, ids=[c[0] for c in CASES])
def test_gradients_match_finite_differences(backend, rng, name, fn, shape_sets):
    for shapes in shape_sets:
        inputs = [t64(backend, sampler(rng, shape)) for sampler, shape in shapes]
        result = xdl.gradcheck(fn, inputs)
        assert result.difference < 1e-7, f"{name} {[s for _, s in shapes]}: {result}"
        assert result.verdict == "great"


class WrongSquare(Function):
    """y = x², with a deliberately wrong backward (3x instead of 2x)."""

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        return (3 * self.x * gy,)


def test_gradcheck_flags_wrong_backward_and_names_the_input(backend, rng):
    a = t64(backend, rng.standard_normal((3, 2)))
    b = t64(backend, rng.standard_normal((2,)))
    b.name = "b"
    result = xdl.gradcheck(lambda a, b: (a * 2).sum() + WrongSquare.apply(b).sum(), [a, b])
    assert result.difference > 1e-3
    assert result.verdict == "bug"
    assert result.worst.input == 1 and result.worst.name == "b"
    assert result.per_input[0] < 1e-7
    assert "b" in str(result)


def test_gradcheck_restores_inputs_and_accepts_argumentless_fn(backend, rng):
    w = t64(backend, rng.standard_normal(4))
    before = w.numpy().copy()
    w.grad = backend.xp.full(4, 5.0)
    result = xdl.gradcheck(lambda: (w.tanh() * w).sum(), [w])
    assert result.verdict == "great"
    assert np.array_equal(w.numpy(), before)
    assert np.array_equal(backend.to_numpy(w.grad), np.full(4, 5.0))


def test_gradcheck_rejects_float32(backend):
    w = xdl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        xdl.gradcheck(lambda w: (w * w).sum(), [w])


def test_broadcast_gradient_has_input_shape(backend):
    x = xdl.tensor(np.ones((5, 3)), requires_grad=True)
    b = xdl.tensor(np.zeros((1, 3)), requires_grad=True)
    c = xdl.tensor(np.zeros(3), requires_grad=True)
    ((x + b) * c + c).sum().backward()
    assert b.grad.shape == (1, 3) and c.grad.shape == (3,)
    assert np.allclose(backend.to_numpy(c.grad), 5 * 1.0 + 5)


def test_gradients_accumulate_until_reset(backend):
    w = xdl.tensor([2.0], requires_grad=True)
    (w * w).sum().backward()
    (w * w).sum().backward()
    assert backend.to_numpy(w.grad).tolist() == [8.0]
    w.grad = None
    (w * 3).sum().backward()
    assert backend.to_numpy(w.grad).tolist() == [3.0]


def test_shared_subexpression_gets_both_paths(backend):
    x = xdl.tensor([3.0], requires_grad=True)
    y = x * x
    (y + y * x).sum().backward()  # d/dx (x² + x³) = 2x + 3x² = 33
    assert backend.to_numpy(x.grad).tolist() == [33.0]


def test_no_grad_records_nothing_and_detach_cuts(backend):
    w = xdl.tensor([1.0], requires_grad=True)
    with xdl.no_grad():
        y = w * 2
    assert not y.requires_grad and y.is_leaf
    z = (w * 2).detach()
    assert not z.requires_grad
    assert xdl.is_grad_enabled()
    with pytest.raises(RuntimeError, match="does not require grad"):
        z.sum().backward()


def test_backward_of_non_scalar_needs_gradient(backend):
    w = xdl.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"one-element tensor, got shape \(2,\)"):
        (w * 2).backward()
    (w * 2).backward(backend.xp.asarray([1.0, 10.0], dtype=np.float32))
    assert backend.to_numpy(w.grad).tolist() == [2.0, 20.0]


def test_float64_scalars_keep_float32(backend):
    w = xdl.tensor([1.0, 2.0])
    assert (w * np.float64(2.0)).dtype == np.float32
    assert (np.float64(2.0) * w).dtype == np.float32
    assert (w + 1e-300).dtype == np.float32
    assert (w ** 2).dtype == np.float32


def test_shape_errors_name_the_shapes(backend):
    a = xdl.tensor(np.ones((2, 3)))
    b = xdl.tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"matmul: shapes \(2, 3\) and \(4, 5\) are not aligned"):
        a @ b
    with pytest.raises(ValueError, match=r"add: shapes \(2, 3\) and \(4, 5\) cannot be broadcast"):
        a + b
    with pytest.raises(ValueError, match=r"cannot reshape a tensor of shape \(2, 3\) into \(4,\)"):
        a.reshape(4)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        a.sum(axis=2)


def test_tensor_constructor_dtypes(backend):
    assert xdl.tensor([1, 2]).dtype == np.float32
    assert xdl.tensor(np.zeros(2)).dtype == np.float64
    assert xdl.tensor([1.0], dtype=np.float64).dtype == np.float64
    p = xdl.Parameter(backend.asarray(np.zeros(3, dtype=np.float32)), name="w")
    assert p.requires_grad and p.name == "w" and "w" in repr(p)
    assert xdl.tensor([[1.5]]).item() == 1.5
