"""Counter-based random draws (xdl.ops.random): pinned to the Philox4x64-10 specification, the same
on every backend, and independent across seeds, layers and steps."""

import math
import shutil
import subprocess

import numpy as np
import pytest

import xdl
from xdl.ops.random import keep_mask, random_bits

M0, M1 = 0xD2E7470EE14C6C93, 0xCA5A826395121157  # Philox4x64 multipliers
W0, W1 = 0x9E3779B97F4A7C15, 0xBB67AE8584CAA73B  # and key increments (Salmon et al. 2011)
MASK = (1 << 64) - 1


def philox4x64_10(counter, key):
    """The specification in plain Python integers: 10 rounds of mulhilo, xor and key bumps."""
    c, (k0, k1) = list(counter), key
    for _ in range(10):
        p0, p1 = M0 * c[0], M1 * c[2]
        c = [(p1 >> 64) ^ c[1] ^ k0, p1 & MASK, (p0 >> 64) ^ c[3] ^ k1, p0 & MASK]
        k0, k1 = (k0 + W0) & MASK, (k1 + W1) & MASK
    return c


def test_draws_follow_the_documented_blocks():
    seed, stream, step = 12345, 3, 77
    bits = random_bits(10, seed, stream, step)
    expected = [v for block in range(3) for v in philox4x64_10((block + 1, step, 0, 0), (seed, stream))][:10]
    assert [int(b) for b in bits] == expected
    # a key's integers are taken mod 2⁶⁴ (the kernel's uint64): a negative seed or step is the block's too
    bits = random_bits(6, -1, -2, 2**64 + 5)
    assert [int(b) for b in bits] == [v for block in range(2) for v in philox4x64_10((block + 1, 5, 0, 0),
                                                                                      (MASK, MASK - 1))][:6]


def test_keep_mask_thresholds_16_bit_lanes():
    bits = random_bits(250, 1, 2, 3)
    lanes = np.array([(int(b) >> (16 * j)) & 0xFFFF for b in bits for j in range(4)])  # lane j of value ⌊i/4⌋
    for rate in (0.0, 0.1, 0.5, 0.9):
        np.testing.assert_array_equal(keep_mask((1000,), rate, 1, 2, 3), lanes / 2**16 >= rate)
    big = keep_mask((1000, 1000), 0.3, 0, 0, 0)
    assert big.mean() == pytest.approx(0.7, abs=0.002)
    assert not keep_mask((5,), 1 - 2**-20, 0, 0, 0).any()


def test_keep_mask_keeps_a_lane_equal_to_the_threshold_and_rounds_the_threshold_up():
    """Kept when u ≥ ⌈rate·2¹⁶⌉ exactly (the module docstring; the CUDA kernel draws the same): over
    2²⁰ elements some lanes are 0 (kept at rate 0, dropped by ``>``) and some are 6553 = ⌊0.1·2¹⁶⌋
    (dropped at rate 0.1, below ⌈0.1·2¹⁶⌉ = 6554, kept by a floor). The 1000 elements of the test
    above held neither, so ``>`` for ``≥`` and ⌊·⌋ for ⌈·⌉ both passed."""
    n = 1 << 20
    bits = random_bits(n // 4, 5, 6, 7)
    lanes = (bits[:, None] >> (16 * np.arange(4, dtype=np.uint64))) & np.uint64(0xFFFF)  # lane j of value ⌊i/4⌋
    lanes = lanes.reshape(-1).astype(np.int64)
    assert (lanes == 0).any() and (lanes == 6553).any()  # (the edges this test is about occur)
    for rate in (0.0, 0.1):
        threshold = math.ceil(rate * 2**16)
        np.testing.assert_array_equal(keep_mask((n,), rate, 5, 6, 7), lanes >= threshold)
    assert keep_mask((n,), 0.0, 5, 6, 7).all()  # rate 0 keeps every unit, a lane of 0 too

def test_stacked_masks_are_each_models_own():
    from xdl.ops.random import stacked_keep_mask

    masks = stacked_keep_mask((6, 5), [0.1, 0.5, 0.7], [4, 8, 15], 2, 9)
    assert masks.shape == (6, 3, 5)
    for k, (rate, seed) in enumerate(((0.1, 4), (0.5, 8), (0.7, 15))):
        np.testing.assert_array_equal(masks[:, k], keep_mask((6, 5), rate, seed, 2, 9))


def test_stacked_masks_equal_each_models_own_over_generated_cases():
    """stacked_keep_mask draws once per distinct seed and compares once: every model's slice is still the mask it
    draws alone, bit for bit, over generated K, shapes (sizes off a multiple of 4 too), seeds (repeated, 2⁶⁴ − 1,
    negative: reduced mod 2⁶⁴), streams, steps and rates (0, ⌈rate·2¹⁶⌉ exact, thresholds of 2¹⁶ dropping all)."""
    from xdl.ops.random import stacked_keep_mask

    rng = np.random.default_rng(13)
    rate_pool = [0.0, 0.3, 0.5, 1 / 2**16, 7 / 2**16, 0.25 + 1e-9, 1 - 2**-9, 1 - 2**-17, 1 - 2**-20, 1.0]
    seed_pool = [0, 1, 5, 2**63 + 7, 2**64 - 1, -1, 12345]
    cases = 0
    for _ in range(300):
        k = int(rng.integers(1, 10))
        shape = tuple(int(d) for d in rng.integers(1, 12, size=int(rng.integers(1, 4))))
        seeds = [seed_pool[i] for i in rng.integers(0, len(seed_pool), k)] if rng.random() < 0.6 else \
            [int(s) for s in rng.integers(0, 2**62, k)]
        rates = [rate_pool[i] if rng.random() < 0.5 else float(rng.random()) for i in rng.integers(0, 10, k)]
        stream, step = int(rng.integers(0, 2**20)), int(rng.integers(0, 2**63))
        masks = stacked_keep_mask(shape, np.array(rates) if rng.random() < 0.5 else rates, seeds, stream, step)
        assert masks.shape == (shape[0], k, *shape[1:]) and masks.dtype == bool
        for j in range(k):
            np.testing.assert_array_equal(masks[:, j], keep_mask(shape, rates[j], seeds[j], stream, step))
        cases += 1
    assert cases == 300


def test_stacked_masks_drop_a_lane_one_below_the_rounded_up_threshold():
    """A lane of value ⌊rate·2¹⁶⌋, one below ⌈rate·2¹⁶⌉ (a rate off the 2⁻¹⁶ grid), is dropped in a stack as
    alone: over generated lanes v, rate (v + ½)/2¹⁶ keeps exactly the lanes ≥ v + 1. The generated cases above,
    a few thousand lanes at random rates, seldom held such a lane: a floor for the ceiling passed them."""
    from xdl.ops.random import stacked_keep_mask

    shape, seeds, stream, step = (8, 16), [3, 11], 2, 5
    lanes = {}
    for seed in seeds:  # lane j of 64-bit value ⌊i/4⌋ is element i (the module docstring)
        bits = random_bits(32, seed, stream, step)
        lanes[seed] = ((bits[:, None] >> (16 * np.arange(4, dtype=np.uint64))) & np.uint64(0xFFFF)).reshape(-1)
    for i in range(0, 128, 7):
        rates = [(int(lanes[seed][i]) + 0.5) / 2**16 for seed in seeds]
        masks = stacked_keep_mask(shape, rates, seeds, stream, step)
        for k, seed in enumerate(seeds):
            expected = (lanes[seed].astype(np.int64) >= int(lanes[seed][i]) + 1).reshape(shape)
            assert not expected.reshape(-1)[i]
            np.testing.assert_array_equal(masks[:, k], expected)


def test_stacked_masks_draw_once_per_distinct_seed(monkeypatch):
    """Models sharing a seed (`xdl.tune`'s trials all do) share one Philox draw: the draws of a stacked mask do
    not grow with K (they were one per model, K a layer)."""
    import xdl.ops.random as random

    drawn = []
    real = random.random_bits
    monkeypatch.setattr(random, "random_bits", lambda *args: drawn.append(args[1]) or real(*args))

    def draws(seeds):
        drawn.clear()
        random.stacked_keep_mask((16, 24), np.linspace(0.1, 0.6, len(seeds)), seeds, 3, 4)
        return sorted(drawn)

    assert draws([7] * 4) == draws([7] * 16) == [7]
    assert draws([1, 2, 1, 2, 1, 2, 1, 2]) == [1, 2]


def test_different_keys_draw_different_masks():
    base = keep_mask((64, 32), 0.5, 0, 1, 2)
    for key in ((1, 1, 2), (0, 2, 2), (0, 1, 3)):
        other = keep_mask((64, 32), 0.5, *key)
        assert 0.4 < (other != base).mean() < 0.6  # about half the entries differ: independent draws


def test_every_backend_draws_the_same_mask(backend):
    mask = backend.ops.dropout_mask((33, 7), 0.25, 9, 4, 1000)
    np.testing.assert_array_equal(backend.to_numpy(mask), keep_mask((33, 7), 0.25, 9, 4, 1000))
    x = xdl.tensor(np.ones((33, 7), np.float32))
    y = xdl.functions.dropout(x, 0.25, key=(9, 4, 1000)).numpy()
    np.testing.assert_array_equal(y != 0, keep_mask((33, 7), 0.25, 9, 4, 1000))


HOST_PROGRAM = r"""
#include <cstdio>
#include "%s"
int main() {  // each line: group seed stream step threshold → the kernel's 16 keep bits
    unsigned long long group, seed, stream, step;
    int threshold;
    while (std::scanf("%%llu %%llu %%llu %%llu %%d", &group, &seed, &stream, &step, &threshold) == 5)
        std::printf("%%u\n", keep_bits(group, seed, stream, step, threshold));
}
"""


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_the_dropout_kernel_draws_the_reference_masks(tmp_path):
    """kernels/random.cu's Philox and mask bits, compiled for the host, against keep_mask: the same
    functions the GPU kernels call, so a GPU run draws the CPU's masks."""
    from xdl.cuda.source import kernel_dir

    program = tmp_path / "keep_bits.cu"
    program.write_text(HOST_PROGRAM % (kernel_dir() / "random.cu"))
    built = subprocess.run(["nvcc", "-std=c++17", "-o", str(tmp_path / "keep_bits"), str(program)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    cases = [(group, seed, stream, step, rate) for group in (0, 1, 62) for seed, stream, step in
             ((0, 0, 0), (9, 4, 1000), (2**64 - 1, 2**63 + 5, 2**40 + 3)) for rate in (0.0, 0.25, 0.5, 1 - 2**-20)]
    lines = "".join(f"{g} {s} {st} {t} {math.ceil(r * 2**16)}\n" for g, s, st, t, r in cases)
    run = subprocess.run([str(tmp_path / "keep_bits")], input=lines, capture_output=True, text=True, check=True)
    for (group, seed, stream, step, rate), bits in zip(cases, run.stdout.split(), strict=True):
        mask = keep_mask((16 * (group + 1),), rate, seed, stream, step)[16 * group:]
        assert [bool(int(bits) >> e & 1) for e in range(16)] == mask.tolist(), (group, seed, stream, step, rate)


def test_relu_then_dropout_as_one_op_is_the_pair_bit_for_bit():
    """`relu_dropout`'s backward reads its own output y where the pair's ReLU reads its: equal where
    a unit is kept (y > 0 exactly where ReLU's output is) and unable to matter where it is dropped
    (the gradient is ±0 or NaN there already). NaN, ±0 and ±∞ included, signs of zeros too."""
    from xdl.ops import NumpyOps

    ops, rng = NumpyOps(xdl.backend.get_backend("numpy")), np.random.default_rng(5)
    x, gy = rng.standard_normal(4000), rng.standard_normal(4000)
    x[::5], x[1::7], x[2::11], x[3::13] = np.nan, -0.0, np.inf, -np.inf
    gy[4::17], gy[5::19], gy[6::23] = np.inf, -np.inf, np.nan
    key = (9, 2, 31)
    with np.errstate(invalid="ignore"):  # ∞·0: NaN on purpose
        relu = ops.relu_forward(x)
        pair, saved = ops.dropout_forward(relu, 0.4, *key)
        pair_grad = ops.relu_backward(ops.dropout_backward(gy, saved, 0.4, *key), relu)
        y, saved = ops.relu_dropout_forward(x, 0.4, *key)
        grad = ops.relu_dropout_backward(gy, y, saved, 0.4, *key)
    for got, want in ((y, pair), (grad, pair_grad)):
        np.testing.assert_array_equal(got, want)
        assert (np.signbit(got) == np.signbit(want))[~np.isnan(want)].all()


def test_relu_dropout_reference_writes_into_the_arrays_it_made(peak_bytes):
    """The CPU's `relu_dropout` (the NumPy reference) applies the mask in ReLU's output and ReLU's
    factor in dropout's gradient, arrays of its own: at its peak it holds x's size twice forward
    (the output, the scaled mask it keeps) and once backward (the gradient), beside the draws' 16
    bits and a flag per unit. Run as the pair's two ops, each way made one more array of x's size
    (3× and 2.25× x's bytes): the hot path's rule, no temporaries where an array of our own will do."""
    from xdl.ops import NumpyOps

    ops, rng = NumpyOps(xdl.backend.get_backend("numpy")), np.random.default_rng(6)
    x, gy = rng.standard_normal((1000, 1000)).astype(np.float32), rng.standard_normal((1000, 1000)).astype(np.float32)
    key = (9, 2, 31)
    y, saved = ops.relu_dropout_forward(x, 0.4, *key)
    assert peak_bytes(lambda: ops.relu_dropout_forward(x, 0.4, *key)) < 2.5 * x.nbytes  # 2.25× (was 3×)
    assert peak_bytes(lambda: ops.relu_dropout_backward(gy, y, saved, 0.4, *key)) < 1.5 * x.nbytes  # 1.25× (was 2.25×)
