"""Data augmentation for image-shaped examples, applied to each training batch (never to dev/test).

Examples may be stored flat (m, H·W) or (m, H, W); ``image_shape`` says how to see them as images.
"""

from __future__ import annotations

import numpy as np

from xdl.data.validation import check_bool, check_int, check_number


class Augment:
    """Random horizontal flips, shifts of up to ``shift`` pixels (zero fill) and Gaussian noise.

    ``flip``: mirror left-right with probability 1/2 (leave it off for digits: a mirrored 2 is no 2).
    ``shift``: integer pixels in each direction; ``noise``: standard deviation added to every value.

    Standardizing the inputs (a leading `xdl.nn.Standardize`), measure its statistics on augmented
    copies too, as ``xdl train`` does (`TrainConfig.build_standardize`): measured on the clean
    images, a border pixel almost always blank gets a tiny spread, and the ink a shift moves into
    it lands hundreds of standard deviations out (digits with ``shift=1`` then trained to 11–20% in
    3 epochs, against 68–90% without the layer).

    >>> import numpy as np
    >>> aug = Augment(image_shape=(2, 2), flip=True)
    >>> aug(np.arange(4.0).reshape(1, 4), np.random.default_rng(2))  # this draw mirrors the 2×2 image [[0, 1], [2, 3]]
    array([[1., 0., 3., 2.]])
    """

    def __init__(self, image_shape: tuple[int, int], flip: bool = False, shift: int = 0, noise: float = 0.0):
        if not (isinstance(image_shape, tuple | list) and len(image_shape) == 2 and all(
                isinstance(n, int | np.integer) and not isinstance(n, bool) and n >= 1 for n in image_shape)):
            raise ValueError(f"image_shape must be (height, width), two positive integers, got {image_shape!r}")
        check_int(shift, "shift", low=0, high=min(image_shape) - 1, expected=f"an integer in [0, {min(image_shape)})")
        check_number(noise, "noise", "a finite number ≥ 0", lambda v: 0 <= v < np.inf)  # real: not a complex one
        check_bool(flip, "flip")  # "no" would be true
        self.image_shape = tuple(int(n) for n in image_shape)
        self.flip, self.shift, self.noise = bool(flip), int(shift), float(noise)

    def check(self, n_features, name: str = "X", source: str = "Augment") -> None:
        """Refuse data whose examples (``n_features`` values each, or an example's shape) are not
        images of ``image_shape``, before training rather than at the first batch's reshape;
        ``source`` names what asked for it. An example shaped (H, W) — axes of 1, a channel, aside —
        must be ``image_shape`` itself, not another of H·W values: a (4, 16) image was flipped and
        shifted as 8×8 rows of its values, silently."""
        h, w = self.image_shape
        shape = (int(n_features),) if np.ndim(n_features) == 0 else tuple(int(n) for n in n_features)
        if int(np.prod(shape)) != h * w:
            raise ValueError(f"{source} sees examples as {h}×{w} images, so {name} must have {h * w} features, "
                             f"got {int(np.prod(shape))}")
        image = tuple(n for n in shape if n != 1)  # (8, 8, 1) and (1, 8, 8) are 8×8 images; (64,) flat rows
        if len(image) > 1 and image != tuple(n for n in (h, w) if n != 1):
            raise ValueError(f"{source} sees examples as {h}×{w} images, so {name}'s examples must be {h}×{w} "
                             f"(or flat rows of {h * w}), got examples of shape {shape}")

    def __call__(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """An augmented copy of the batch ``X`` (m, H·W) or (m, H, W), drawn from ``rng``. Floating
        ``X`` keeps its dtype; integer (uint8 pixels) or boolean ``X`` comes back as float32, as
        Keras's augmentation layers compute in floats: noise is fractional and may go below 0 or
        past 255, which an integer copy would truncate and wrap around."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"Augment: rng must be a NumPy Generator (np.random.default_rng(seed)), got {rng!r}")
        X = np.asarray(X)
        if X.ndim < 2:
            raise ValueError(f"Augment: X must be a batch of images, (m, H·W) or (m, H, W), got shape {X.shape}")
        self.check(X.shape[1:])
        h, w = self.image_shape
        dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.float32
        images = np.array(X, dtype=dtype, copy=True).reshape(len(X), h, w)
        if self.flip:
            mirrored = rng.random(len(X)) < 0.5
            images[mirrored] = images[mirrored, :, ::-1]
        if self.shift:
            for i, (dy, dx) in enumerate(rng.integers(-self.shift, self.shift + 1, size=(len(X), 2))):
                images[i] = _shifted(images[i], dy, dx)
        if self.noise:
            images += rng.normal(0.0, self.noise, images.shape).astype(images.dtype)
        return images.reshape(X.shape)

    def __repr__(self) -> str:
        return f"Augment(image_shape={self.image_shape}, flip={self.flip}, shift={self.shift}, noise={self.noise})"


def _shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``image`` moved down by dy and right by dx (negative: up/left); vacated pixels are 0."""
    out = np.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = image[max(-dy, 0):h - max(dy, 0),
                                                                       max(-dx, 0):w - max(dx, 0)]
    return out
