"""Counter-based random draws (xdl.ops.random): pinned to the Philox4x64-10 specification, the same
on every backend, and independent across seeds, layers and steps."""

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


def test_keep_mask_thresholds_16_bit_lanes():
    bits = random_bits(250, 1, 2, 3)
    lanes = np.array([(int(b) >> (16 * j)) & 0xFFFF for b in bits for j in range(4)])  # lane j of value ⌊i/4⌋
    for rate in (0.0, 0.1, 0.5, 0.9):
        np.testing.assert_array_equal(keep_mask((1000,), rate, 1, 2, 3), lanes / 2**16 >= rate)
    big = keep_mask((1000, 1000), 0.3, 0, 0, 0)
    assert big.mean() == pytest.approx(0.7, abs=0.002)
    assert not keep_mask((5,), 1 - 2**-20, 0, 0, 0).any()


def test_stacked_masks_are_each_models_own():
    from xdl.ops.random import stacked_keep_mask

    masks = stacked_keep_mask((6, 5), [0.1, 0.5, 0.7], [4, 8, 15], 2, 9)
    assert masks.shape == (6, 3, 5)
    for k, (rate, seed) in enumerate(((0.1, 4), (0.5, 8), (0.7, 15))):
        np.testing.assert_array_equal(masks[:, k], keep_mask((6, 5), rate, seed, 2, 9))


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
