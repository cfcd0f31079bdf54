"""xdl.data and xdl.datasets: splits, standardization, mini-batches, one-hot, augmentation, inputs."""

import re
import warnings

import numpy as np
import pytest

import xdl
from xdl.data import Augment, Standardizer, check_features, check_labels, holdout_sizes, minibatches, one_hot, split
from xdl.train import Trainer


def test_split_sizes_follow_the_course_defaults():
    assert holdout_sizes(1000) == (200, 200)  # 60/20/20
    assert holdout_sizes(5_000_000) == (10_000, 10_000)  # 99.6/0.2/0.2: fixed-size dev and test
    assert holdout_sizes(1000, dev=0.1, test=50) == (100, 50)
    assert holdout_sizes(100, dev=0.001, test=np.float32(0.1)) == (1, 10)  # a fraction asked for is never empty
    with pytest.raises(ValueError, match="dev must be a fraction in \\[0, 1\\) or a count .*got True"):
        holdout_sizes(100, dev=True)
    for fraction in (1.5, 1.0, -0.1):  # a float outside [0, 1) is no fraction (−0.1 was not an empty dev set)
        with pytest.raises(ValueError, match=r"dev must be a fraction in \[0, 1\) or a count in \[0, 100\), got"):
            holdout_sizes(100, dev=fraction)
    with pytest.raises(ValueError, match="no training examples"):
        holdout_sizes(100, dev=60, test=40)
    assert holdout_sizes(100, dev=0, test=0.0) == (0, 0)  # none held out, asked for as a count or a fraction
    for count in (100, 101, -1):  # a count is in [0, m): m itself is named as such, not as leaving no training
        with pytest.raises(ValueError, match=rf"or a count in \[0, 100\), got {count}$"):
            holdout_sizes(100, dev=count)


def test_split_is_a_seeded_stratified_partition(rng):
    X = rng.standard_normal((1000, 3)).astype(np.float32)
    y = np.repeat([0, 1, 2], [700, 200, 100])
    s = split(X, y, seed=3)
    assert [len(p) for p in (s.X_train, s.X_dev, s.X_test)] == [600, 200, 200]
    for part in (s.y_train, s.y_dev, s.y_test):  # every part keeps the class shares
        np.testing.assert_allclose(np.bincount(part, minlength=3) / len(part), [0.7, 0.2, 0.1], atol=0.01)
    rows = np.concatenate([s.X_train, s.X_dev, s.X_test])
    assert sorted(map(tuple, rows)) == sorted(map(tuple, X))  # a partition: nothing lost, nothing repeated
    again = split(X, y, seed=3)
    np.testing.assert_array_equal(again.X_dev, s.X_dev)
    assert not np.array_equal(split(X, y, seed=4).X_dev, s.X_dev)


def test_split_stratifies_labels_of_any_type(rng):
    X = rng.standard_normal((100, 2))
    y = np.repeat([0, 1], [90, 10])
    s = split(X, y, seed=1)
    names = np.array(["common", "rare"])[y]  # sort as the integers do: the same classes, so the same split
    onehot = np.eye(2)[y]  # rows: the class of their argmax
    for labels in (names, names.astype(object), onehot, 0.9 * onehot + 0.05, y[:, None], y.astype(np.float32), y == 1):
        t = split(X, labels, seed=1)
        for a, b in zip(s[::2], t[::2]):
            np.testing.assert_array_equal(a, b)
    for seed in range(5):
        t = split(X, names, seed=seed)
        assert (t.y_dev == "rare").sum() == (t.y_test == "rare").sum() == 2
    with pytest.raises(ValueError, match="stratify needs labels that can be sorted.*stratify=False"):
        split(X, np.array(["a", None] * 50, dtype=object))
    assert len(split(X, np.array(["a", None] * 50, dtype=object), stratify=False).X_dev) == 20
    targets = rng.standard_normal(100)  # a regression's: no classes, shuffled as with stratify=False
    for a, b in zip(split(X, targets, seed=1), split(X, targets, seed=1, stratify=False)):
        np.testing.assert_array_equal(a, b)
    # soft labels with zeros in them are distributions too (≥ 0, not > 0): their argmax's shares are kept
    soft = np.array([[0.75, 0.25, 0.0], [0.0, 0.1, 0.9]] * 50)[rng.permutation(100)]
    for seed in range(5):
        assert [int((part.argmax(axis=1) == 2).sum()) for part in split(X, soft, seed=seed)[1::2]] == [30, 10, 10]


def test_split_of_integer_labels_is_pinned():
    # scripts and tests rely on the exact split of integer labels: a change to how classes are found
    # must leave it as it was
    X = np.arange(20.0).reshape(10, 2)
    s = split(X, np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2]), dev=0.2, test=0.2, seed=0)
    np.testing.assert_array_equal(s.X_dev[:, 0] // 2, [7, 4])
    np.testing.assert_array_equal(s.X_test[:, 0] // 2, [5, 9])


def test_standardizer_uses_training_statistics_only(rng):
    train = rng.normal(5, 3, (500, 4))
    train[:, 3] = 7.0  # a constant feature is only centered
    other = rng.normal(0, 1, (10, 4))
    s = Standardizer().fit(train)
    z = s.transform(train)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(z.std(0), [1, 1, 1, 0], atol=1e-12)
    np.testing.assert_allclose(s.transform(other), (other - train.mean(0)) / np.where(train.std(0) > 0, train.std(0), 1))
    np.testing.assert_allclose(s.inverse_transform(s.transform(other)), other)
    layer = s.layer()
    np.testing.assert_allclose(xdl.to_numpy(layer(xdl.tensor(other.astype(np.float32))).data),
                               s.transform(other), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"^X has 5 features; the Standardizer was fitted on 4$"):
        s.transform(rng.normal(size=(3, 5)))


def test_standardizer_statistics_are_scikit_learns(rng):
    """μ and σ (σ = 1 for a constant feature) as scikit-learn's StandardScaler computes them (NumPy's mean
    and var, and its rule for a constant: σ² ≤ m·ε·σ² + (m·ε·μ)²), on features whose mean is exactly 0,
    far from 0, constant up to rounding, and ordinary: a feature of mean 0 and spread 2 was not compared,
    so its tolerance written (m·ε/μ)² (infinite: every zero-mean feature only centered) passed every test."""
    eps = np.finfo(np.float64).eps
    for m in (2, 5, 40):
        x = rng.standard_normal(m)
        X = np.stack([np.concatenate([-2 * x, 2 * x]), np.concatenate([1e8 + x, 1e8 - x]),
                      np.full(2 * m, 0.1 + 0.2), np.concatenate([x, rng.standard_normal(m) * 3 + 1])], axis=1)
        mean, var = X.mean(axis=0), X.var(axis=0)
        constant = var <= len(X) * eps * var + (len(X) * eps * mean) ** 2
        s = Standardizer().fit(X)
        np.testing.assert_allclose(s.mean, mean, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(s.scale, np.where(constant, 1.0, np.sqrt(var)), rtol=1e-9)
        assert constant.tolist() == [False, False, True, False]


def test_standardizer_inverse_transform_checks_its_input():
    s = Standardizer().fit(np.array([[1.0], [2.0]]))  # μ = 1.5, σ = 0.5
    np.testing.assert_array_equal(s.inverse_transform(np.array([[0], [1]])), [[1.5], [2.0]])  # not truncated to ints
    with pytest.raises(ValueError, match=r"^X has 2 features; the Standardizer was fitted on 1$"):
        s.inverse_transform(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"^X must be 2-D \(examples, features\), got shape \(1,\)"):
        s.inverse_transform(np.zeros(1))
    with pytest.raises(RuntimeError, match="call fit"):
        Standardizer().inverse_transform(np.zeros((1, 1)))


def test_a_one_dimensional_x_is_told_which_reshape_it_needs():
    """As scikit-learn's message: a one-row file read by np.loadtxt (or one example sliced as X[0])
    is 1-D; the error said only the shape. Where the width is known, the reshape that fits it."""
    from xdl.data.validation import check_features

    with pytest.raises(ValueError, match=r"^X must be 2-D .* got shape \(5,\): X.reshape\(-1, 1\) if it holds one "
                                         r"feature, X.reshape\(1, -1\) if one example$"):
        xdl.nn.mlp(4, [3], 2).predict(np.zeros(5))
    with pytest.raises(ValueError, match=r"got shape \(4,\): X.reshape\(1, -1\) if it is one example$"):
        check_features(np.zeros(4), n_features=4)
    with pytest.raises(ValueError, match=r"got shape \(5,\): X.reshape\(-1, 1\) if it is one feature$"):
        check_features(np.zeros(5), n_features=1)


def test_a_feature_constant_up_to_rounding_is_only_centered():
    """0.1 + 0.2 and 0.3 differ in their last bit: a variance within the rounding error of computing
    it (σ² ≤ m·ε·σ² + (m·ε·μ)²) is a constant's, as in scikit-learn's StandardScaler — not a
    feature blown up to ±1.155. A real spread, however small next to the mean, is kept."""
    X = np.array([[0.1 + 0.2, 5.0], [0.3, 5.0], [0.3, 5.0 + 1e-9], [0.3, 5.0]])
    s = Standardizer().fit(X)
    assert s.scale[0] == 1.0 and s.scale[1] == pytest.approx(np.std(X[:, 1]))
    z = s.transform(X)
    assert np.abs(z[:, 0]).max() < 1e-15
    np.testing.assert_allclose(z[:, 1], [-1 / np.sqrt(3), -1 / np.sqrt(3), np.sqrt(3), -1 / np.sqrt(3)], rtol=1e-6)


def test_standardize_layer_is_saved_with_the_model(tmp_path, rng):
    X = rng.normal(3, 2, (50, 3)).astype(np.float32)
    model = xdl.nn.mlp(3, [4], 2, standardize=Standardizer().fit(X).layer())
    xdl.save(model, tmp_path / "m.npz")
    np.testing.assert_array_equal(xdl.load(tmp_path / "m.npz").predict_outputs(X), model.predict_outputs(X))


def test_minibatches_shuffle_partition_and_keep_the_last_batch():
    X, y = np.arange(10)[:, None], np.arange(10)
    batches = list(minibatches(X, y, 4, seed=0))
    assert [len(b) for b, _ in batches] == [4, 4, 2]
    order = np.concatenate([yb for _, yb in batches])
    assert sorted(order) == list(range(10)) and list(order) != list(range(10))
    assert all(np.array_equal(xb[:, 0], yb) for xb, yb in batches)  # rows stay with their labels
    assert [list(yb) for _, yb in minibatches(X, y, 5, shuffle=False)] == [list(range(5)), list(range(5, 10))]
    for bad in (0, -1, 2.5, True):  # True is no batch size of 1
        with pytest.raises(ValueError, match="^batch_size must be a positive integer"):
            minibatches(X, y, bad)  # refused at the call, not at the first batch


def test_a_last_batch_of_exactly_min_size_is_kept_and_one_below_is_merged_with_a_warning():
    """batch_bounds merges a last batch only below ``min_size`` (one of min_size examples is one batch
    norm takes); training_batches warns of the merge whenever it happens, also with two batches; an
    unseeded shuffle follows `xdl.seed`, as PyTorch's follows torch.manual_seed. Each was a mutant
    (≤ for <, a warning only from three batches on, a fixed generator) that every test passed."""
    from xdl.data.batches import batch_bounds, training_batches
    assert batch_bounds(10, 4, min_size=2) == [(0, 4), (4, 8), (8, 10)]
    assert batch_bounds(9, 4, min_size=2) == [(0, 4), (4, 9)]
    with pytest.warns(UserWarning, match="the last batch of each epoch would have 1 example"):
        assert training_batches(5, 4, min_size=2) == [(0, 5)]
    with pytest.raises(ValueError, match=r"has 1 example; batch norm needs batches of at least 2$"):
        training_batches(1, 4, min_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # batches that divide the set: no last batch to merge, nothing to say
        assert training_batches(8, 4, min_size=2) == [(0, 4), (4, 8)]
        assert training_batches(10, 4, min_size=2) == [(0, 4), (4, 8), (8, 10)]  # a last one of min_size: kept, unsaid
    with pytest.raises(ValueError, match=r"has 0 examples; a step needs one$"):  # (no batch norm to name)
        training_batches(0, 4)
    orders = []
    for seed in (1, 1, 2):
        xdl.seed(seed)
        orders.append(np.concatenate([yb for _, yb in minibatches(np.zeros((50, 1)), np.arange(50), 50)]))
    assert np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[0], orders[2])


def test_minibatches_first_pass_is_the_first_permutation_of_the_seed_and_each_later_pass_the_next():
    """Epoch e's order is the e-th permutation drawn from ``seed`` (a mutant that began with the second one, the
    pass drawn at the call thrown away, passed every test)."""
    X = np.arange(10.0)[:, None]
    batches = minibatches(X, np.arange(10), 4, seed=3)
    expected = np.random.default_rng(3)
    for _ in range(3):
        order = np.concatenate([xb[:, 0] for xb, _ in batches])
        np.testing.assert_array_equal(order, expected.permutation(10))


def test_minibatches_check_min_size_and_take_lists():
    X, y = np.arange(10)[:, None], np.arange(10)
    assert [len(b) for b, _ in minibatches(X, y, 3, min_size=2)] == [3, 3, 4]  # the last, 1, merged
    with pytest.raises(ValueError, match=r"^min_size \(3\) must be at most batch_size \(2\)"):
        minibatches(X, y, 2, min_size=3)  # every batch of 2 would be below it ([2, 2, 2, 4] before)
    batches = list(minibatches(X.tolist(), y.tolist(), 4, shuffle=False))
    assert [yb.tolist() for _, yb in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert isinstance(batches[0][0], np.ndarray)
    with pytest.raises(TypeError, match=r"^y must be a NumPy or CuPy array \(or a list of examples, a pandas frame\), got dict"):
        minibatches(X, {"labels": y}, 4)
    with pytest.raises(ValueError, match="^shuffle must be True or False, got 'no'"):
        minibatches(X, y, 4, shuffle="no")


def test_one_hot():
    np.testing.assert_array_equal(one_hot([2, 0], 3), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        one_hot([3], 3)
    assert one_hot(np.array([], dtype=int), 3).shape == one_hot([], 3).shape == (0, 3)
    with pytest.raises(ValueError, match="^one_hot: y is empty, so the number of classes cannot be read from it; "
                                         "pass n_classes"):
        one_hot(np.array([], dtype=int))
    # an (m, 1) column of indices, as fit and Keras's to_categorical take it (refused: "got shape (2, 1)")
    np.testing.assert_array_equal(one_hot(np.array([[2], [0]]), 3), one_hot([2, 0], 3))
    np.testing.assert_array_equal(one_hot(np.matrix([[1], [0]])), [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match=r"masked values, missing labels \(first at example 1\)"):
        one_hot(np.ma.masked_array([[2], [0]], mask=[[False], [True]]), 3)
    with pytest.raises(ValueError, match=r"got shape \(2, 2\)"):  # (rows of two: no column of indices)
        one_hot(np.array([[2, 0], [0, 1]]), 3)


def test_one_hot_reads_labels_of_any_backend_and_tensors(backend):
    """Labels on the device (a CuPy array, a Tensor of one) are read as minibatches and fit read them: NumPy's
    np.asarray of a CuPy array raised "Implicit conversion to a NumPy array is not allowed" inside one_hot."""
    expected = [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    y = backend.asarray(np.array([2, 0, 1]))
    for labels in (y, xdl.tensor(y), backend.asarray(np.array([[2], [0], [1]]))):
        rows = one_hot(labels)
        assert isinstance(rows, np.ndarray) and rows.dtype == np.float32
        np.testing.assert_array_equal(rows, expected)
    whole_floats = backend.asarray(np.array([2.0, 0.0, 1.0]))  # (np.loadtxt's labels, moved to the device)
    np.testing.assert_array_equal(one_hot(whole_floats, 4), np.pad(expected, ((0, 0), (0, 1))))


@pytest.mark.parametrize("options, message", [
    (dict(noise=float("nan")), "noise must be a finite number ≥ 0, got nan"),
    (dict(flip="no"), "flip must be True or False, got 'no'"),  # a truthy string was a flip
    (dict(shift=True), r"shift must be an integer in \[0, 8\), got True"),
])
def test_augment_options_are_checked(options, message):
    with pytest.raises(ValueError, match=message):
        Augment((8, 8), **options)
    assert Augment((8, 8), shift=np.int64(1)).shift == 1


def test_augment_checks_image_shape_when_made_and_the_batch_when_called():
    for shape in ((4.0, 4.0), (4, 0), (4,), 16, (True, 4)):
        with pytest.raises(ValueError, match=r"^image_shape must be \(height, width\), two positive integers"):
            Augment(shape, shift=1)
    assert Augment([np.int64(4), 4]).image_shape == (4, 4)
    with pytest.raises(ValueError, match=r"^Augment sees examples as 3×3 images, so X must have 9 features, got 16"):
        Augment((3, 3), flip=True)(np.zeros((2, 16)), np.random.default_rng(0))


def test_augment_refuses_images_of_another_shape_with_as_many_pixels():
    """(m, 4, 16) images given to Augment((8, 8)): 64 values each, so they were flipped and shifted as
    8×8 rows of their values, silently (the pixel at (0, 0) went to (0, 7), not (0, 15)); the
    Trainer flattened them first, and trained on them so. A channel axis of 1 is an image still."""
    augment = Augment((8, 8), flip=True)
    with pytest.raises(ValueError, match=r"^Augment sees examples as 8×8 images, so X's examples must be 8×8 "
                                         r"\(or flat rows of 64\), got examples of shape \(4, 16\)"):
        augment(np.zeros((2, 4, 16)), np.random.default_rng(0))
    for shape in ((2, 64), (2, 8, 8), (2, 8, 8, 1), (2, 1, 8, 8)):
        assert augment(np.zeros(shape), np.random.default_rng(0)).shape == shape
    xdl.seed(0)
    model = xdl.nn.mlp(64, [4], 2)
    trainer = Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.SGD(model, lr=0.1), epochs=1,
                      augment=augment, seed=0, progress=False)
    for X in (np.zeros((4, 4, 16)), np.zeros((4, 4, 16)).tolist()):  # (nested lists of them too)
        with pytest.raises(ValueError, match=r"^augment sees examples as 8×8 images, so X's examples must be 8×8"):
            trainer.fit(X, np.array([0, 1, 0, 1]))
    assert trainer.epoch == 0
    assert len(trainer.fit(np.zeros((4, 8, 8)), np.array([0, 1, 0, 1]))) == 1


def test_augment_gives_integer_images_back_as_floats():
    """uint8 pixels plus noise: floats (as Keras's augmentation layers compute), not noise truncated
    to integers and wrapped around (10 − 11 was 255)."""
    images = np.full((200, 4), 10, dtype=np.uint8)
    noisy = Augment((2, 2), noise=2.0)(images, np.random.default_rng(0))
    assert noisy.dtype == np.float32 and noisy.min() < 9 and noisy.max() < 20
    assert abs(noisy.mean() - 10) < 0.2 and abs(noisy.std() - 2) < 0.2
    shifted = Augment((2, 2), shift=1)(images, np.random.default_rng(0))
    assert shifted.dtype == np.float32 and set(np.unique(shifted)) <= {0.0, 10.0}
    assert Augment((2, 2), noise=0.1)(images.astype(np.float64), np.random.default_rng(0)).dtype == np.float64


def test_augment_flips_shifts_and_adds_noise():
    image = np.arange(9.0).reshape(1, 9)
    flipped = Augment((3, 3), flip=True)(np.repeat(image, 64, 0), np.random.default_rng(0))
    mirror = image.reshape(3, 3)[:, ::-1].reshape(9)
    kinds = {tuple(r) for r in flipped}
    assert kinds == {tuple(image[0]), tuple(mirror)}  # each example either kept or mirrored
    shifted = Augment((3, 3), shift=1)(np.repeat(image, 64, 0), np.random.default_rng(0))
    assert all(set(r[r != 0]) <= set(image[0]) for r in shifted) and len({tuple(r) for r in shifted}) > 3
    noisy = Augment((3, 3), noise=0.1)(np.zeros((1000, 9)), np.random.default_rng(0))
    assert abs(noisy.std() - 0.1) < 0.01
    with pytest.raises(ValueError, match="shift"):
        Augment((3, 3), shift=3)
    with pytest.raises(ValueError, match=r"sees examples as 3×3 images, so X must have 9 features, got 8"):
        Augment((3, 3), shift=1).check(8)


def test_a_configs_augment_flip_mirrors_its_datasets_images():
    """``augment_flip`` in a TrainConfig makes its augmentation flip the 8×8 digits left to right: each
    example comes back as it was or as its mirror image, both drawn; without it, none is mirrored."""
    from xdl.config import TrainConfig

    image = np.arange(64.0).reshape(1, 64)
    mirror = image.reshape(8, 8)[:, ::-1].reshape(64)
    flipped = TrainConfig(augment_flip=True).build_augment()(np.repeat(image, 64, 0), np.random.default_rng(0))
    assert {tuple(r) for r in flipped} == {tuple(image[0]), tuple(mirror)}
    shifted = TrainConfig(augment_shift=1).build_augment()(np.repeat(image, 64, 0), np.random.default_rng(0))
    assert not any(np.array_equal(r, mirror) for r in shifted)



def test_augment_shifts_reach_every_offset_up_to_shift_each_way_alike():
    """Each (dy, dx) in [−shift, shift]² is drawn, about as often as the others: a lone pixel in the
    middle of a 5×5 image lands at each of the 25 places (a range one short on the positive side never
    moved it down or right by ``shift``)."""
    X = np.zeros((2500, 25))
    X[:, 12] = 1  # the centre pixel
    moved = Augment((5, 5), shift=2)(X, np.random.default_rng(0)).reshape(-1, 5, 5)
    rows, dy, dx = np.nonzero(moved)
    assert np.array_equal(rows, np.arange(2500))  # the pixel is kept in every image: |shift| ≤ 2
    offsets, counts = np.unique(np.stack([dy - 2, dx - 2], axis=1), axis=0, return_counts=True)
    assert offsets.tolist() == [[i, j] for i in range(-2, 3) for j in range(-2, 3)]
    assert counts.min() > 60  # 100 expected each (a 4-σ band is 60–140)
    images = np.random.default_rng(1).standard_normal((50, 12))
    assert np.array_equal(Augment((3, 4))(images, np.random.default_rng(0)), images)  # flip off: none mirrored
    assert np.array_equal(Augment((3, 4), noise=0.0, shift=0)(images, np.random.default_rng(0)), images)

def test_input_checks_name_the_problem():
    with pytest.raises(ValueError, match="NaN or Inf.*example 1"):
        check_features([[0.0, 1.0], [np.inf, 0.0]])
    with pytest.raises(ValueError, match="2-D"):
        check_features([1.0, 2.0])
    with pytest.raises(ValueError, match="3 labels for 2 examples"):
        check_labels([0, 1, 1], 2)
    with pytest.raises(ValueError, match="class index 5.*3 classes"):
        check_labels([0, 5], 2, n_classes=3)
    with pytest.raises(ValueError, match="integer class indices"):
        check_labels([0.5, 1.0], 2)
    with pytest.raises(ValueError, match=r"^X must be a rectangular array"):
        check_features([[1.0, 2.0], [1.0]])
    with pytest.raises(ValueError, match=r"^X has no features, got shape \(3, 0\)"):
        check_features(np.zeros((3, 0)))


def test_features_beyond_the_models_dtype_are_refused():
    X = np.array([[1.0, 2.0], [3.0, -1e39]])  # finite in float64, inf in float32
    with pytest.raises(ValueError, match=r"^X_dev has values beyond float32's range.*example 1, feature 1"):
        check_features(X, "X_dev", dtype=np.float32)
    assert check_features(X, dtype=np.float64) is X
    assert check_features(X[:1], dtype=np.float32).dtype == np.float64  # checked, not cast


@pytest.mark.parametrize("label", [2**20, 10**12, np.iinfo(np.int64).max, 1e30])
def test_labels_name_more_classes_than_max_classes(label):
    y = np.array([0, label], dtype=np.float64 if isinstance(label, float) else np.int64)
    with pytest.raises(ValueError, match=r"^y has class index .*at most MAX_CLASSES = 1048576"):
        check_labels(y, 2)
    assert check_labels(np.array([0, 2**20 - 1]), 2).max() == 2**20 - 1
    with pytest.raises(ValueError, match=r"^y has class index .*, outside the model's 10 classes \[0, 10\)"):
        check_labels(y, 2, n_classes=10)  # a model's width, when known, is what the label misses


def test_uint64_labels_are_compared_before_any_cast():
    y = np.array([0, 2**63 + 5], dtype=np.uint64)  # int64 would wrap it negative
    with pytest.raises(ValueError, match=r"^y has class index 9223372036854775813"):
        check_labels(y, 2)
    assert check_labels(np.array([0, 3], dtype=np.uint64), 2).tolist() == [0, 3]


@pytest.mark.parametrize("name", list(xdl.datasets.DATASETS))
def test_datasets_are_seeded_and_well_formed(name):
    X, y = xdl.datasets.load(name)
    assert X.dtype == np.float32 and y.dtype == np.int64 and X.ndim == 2 and len(X) == len(y)
    assert np.isfinite(X).all() and y.min() == 0 and len(np.unique(y)) == y.max() + 1
    X2, y2 = xdl.datasets.load(name)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)


def test_mnist1d_gives_the_examples_asked_for_or_says_why_not():
    pytest.importorskip("mnist1d")
    assert len(xdl.datasets.mnist1d(30)[0]) == 30
    for m in (7, 15, 1234):  # it drew 0 (a crash) or 1230 (15: a multiple of 5, not 10)
        with pytest.raises(ValueError, match=f"mnist1d: m must be a multiple of 10 .*got {m}"):
            xdl.datasets.mnist1d(m)
    with pytest.raises(ValueError, match=r"mnist1d: seed must be an integer in \[0, 2\*\*32\), got None"):
        xdl.datasets.mnist1d(30, seed=None)


def test_mnist1d_leaves_numpys_and_pythons_generators_as_they_were():
    """mnist1d seeds both: Python's random was left at seed 42 (every draw after it the same)."""
    import random

    pytest.importorskip("mnist1d")
    random.seed(1)
    np.random.seed(1)
    expected = random.random(), np.random.random()
    random.seed(1)
    np.random.seed(1)
    xdl.datasets.mnist1d(30)
    assert (random.random(), np.random.random()) == expected


def test_unknown_dataset_and_missing_extra(monkeypatch):
    with pytest.raises(ValueError, match="choose one of"):
        xdl.datasets.load("cifar")
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'xdl\[data\]'"):
        xdl.datasets.digits()


def test_yes_no_labels_are_classes_0_and_1():
    from xdl.data import check_labels

    assert check_labels(np.array([True, False, True]), 3).tolist() == [1, 0, 1]
    X, y = xdl.datasets.moons(200, noise=0.2, seed=0)
    xdl.seed(0)
    model = xdl.nn.mlp(2, [8], 1)
    trainer = xdl.train.Trainer(model, xdl.losses.BinaryCrossEntropy(), xdl.optim.Adam(model, lr=1e-2), epochs=2,
                                progress=False)
    assert len(trainer.fit(X, y == 1)) == 2


# -- found by a data scientist trying the data tools --------------------------------------------
def test_a_stratified_split_refuses_a_class_of_one_example_as_scikit_learn_does():
    X, y = np.zeros((31, 2)), np.array([0, 1, 2] * 10 + [3])
    with pytest.raises(ValueError, match=r"^y: class 3 has only 1 example; a stratified split needs at least 2"):
        split(X, y, stratify=True)  # its one example went to dev: a model built from train had no class 3
    with pytest.warns(UserWarning, match=r"class 3 has only 1 example; .*: split without stratifying"):
        shuffled = split(X, y)  # the default: said, and shuffled
    assert np.array_equal(shuffled.y_train, split(X, y, stratify=False).y_train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # all distinct (a regression's whole numbers): no classes, nothing to say
        assert len(split(np.zeros((50, 2)), np.arange(50.0)).y_train) == 30
    one_hot_rows = one_hot(y)  # (a row names its class by its argmax, not by its first value)
    with pytest.raises(ValueError, match=r"^y: class 3 \(the argmax of its row\) has only 1 example"):
        split(X, one_hot_rows, stratify=True)
    with pytest.raises(ValueError, match=r"^y: class 3 has only 1 example"):  # the lone one named, not one of 2
        split(np.zeros((30, 2)), np.array([4, 4] + [0, 1, 2] * 9 + [3]), stratify=True)
    y_two = np.array([0, 1, 2] * 10 + [3, 3])  # a class of 2 examples is enough: stratified, no word said
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for stratify in (None, True):
            parts = split(np.zeros((32, 2)), y_two, dev=2, test=2, stratify=stratify)
            assert sorted(np.concatenate(parts[1::2]).tolist()) == sorted(y_two.tolist())


@pytest.mark.parametrize("kwargs,message", [
    ({"stratify": "yes"}, "split: stratify must be True or False, got 'yes'"),
    ({"stratify": 0}, "split: stratify must be True or False, got 0"),
    ({"seed": "a"}, "split: seed must be an integer ≥ 0, got 'a'"),
    ({"seed": -1}, "split: seed must be an integer ≥ 0, got -1")])
def test_split_names_a_bad_argument(kwargs, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        split(np.zeros((10, 2)), np.arange(10) % 2, **kwargs)


def test_split_names_nan_labels_and_no_examples():
    y = np.arange(10.0) % 2
    y[4] = np.nan
    with pytest.raises(ValueError, match=r"^y contains NaN or Inf \(first at example 4\)"):
        split(np.zeros((10, 2)), y)  # stratification went off without a word, the NaN kept
    with pytest.raises(ValueError, match="^X has no examples to split"):
        split(np.zeros((0, 2)), np.zeros(0))
    # a y that has no length was said to have 0 ("X has 10 examples but y has 0")
    with pytest.raises(TypeError, match=r"^y must be an array of one label or target per example of X, got an object "
                                        r"of type generator"):
        split(np.zeros((10, 2)), (v for v in range(10)))
    with pytest.raises(ValueError, match=r"^y must be an array of one label or target per example of X, got a single "
                                         r"value array\(3\)"):
        split(np.zeros((10, 2)), 3)
    with pytest.raises(ValueError, match=r"^dev \(2\) and test \(2\) leave no training examples out of 4"):
        split(np.zeros((4, 2)), np.arange(4), dev=0.375, test=0.375)  # each rounds 1.5 up
    with pytest.raises(ValueError, match="^Standardizer.fit: X has no examples"):
        Standardizer().fit(np.zeros((0, 3)))


class FrameLike:
    """What minibatches sees of a pandas DataFrame: an object NumPy reads through ``__array__``."""

    def __init__(self, values):
        self.values = values

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.values, dtype=dtype)

    def __len__(self):
        return len(self.values)


def test_minibatches_take_array_likes_and_check_the_seed():
    X, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    batches = list(minibatches(FrameLike(X), FrameLike(y), 4, seed=0))
    assert [len(b) for b, _ in batches] == [4, 4, 2] and all(isinstance(b, np.ndarray) for b, _ in batches)
    assert sorted(np.concatenate([yb for _, yb in batches]).tolist()) == list(range(10))
    for seed in ("a", -1, 1.5):
        with pytest.raises(ValueError, match="^seed must be None, an integer ≥ 0 or a NumPy Generator"):
            minibatches(X, y, 4, seed=seed)


def test_augment_names_an_rng_that_is_no_generator():
    aug = Augment(image_shape=(2, 2), noise=0.1)
    for rng in (0, None):
        with pytest.raises(TypeError, match="^Augment: rng must be a NumPy Generator"):
            aug(np.zeros((1, 4)), rng)
    assert "from xdl" not in Augment.__doc__  # a source line once sat in its example


def test_one_hot_reads_yes_no_labels_and_refuses_a_width_beyond_max_classes_and_labels_beyond_n_classes():
    assert one_hot(np.array([True, False])).tolist() == [[0.0, 1.0], [1.0, 0.0]]
    with pytest.raises(ValueError, match="^one_hot: y has class index 1000000000; the number of classes must be at "
                                         "most MAX_CLASSES"):
        one_hot([10**9])  # a (1, 10⁹) float32 array: 4 GB of zeros
    for labels in ([0, 3, 2**20], [2**20, 0], [5, 2**20 + 7, 1]):  # the largest label sets the width, not the first
        with pytest.raises(ValueError, match=f"^one_hot: y has class index {max(labels)}; the number of classes"):
            one_hot(np.array(labels))
    for labels in ([0, 3], [3, 0], [1, 7, 2]):  # a label at or past n_classes, wherever it is, is named by range
        with pytest.raises(ValueError, match=re.escape(f"one_hot: labels must be in [0, 3), got values in "
                                                       f"[{min(labels)}, {max(labels)}]")):
            one_hot(np.array(labels), 3)


NOISE = "a number in [0, 1e+36] (beyond, X would overflow float32)"


@pytest.mark.parametrize("call,message", [
    (lambda: xdl.datasets.moons(noise=-1), f"moons: noise must be {NOISE}, got -1"),
    (lambda: xdl.datasets.moons(noise=float("nan")), f"moons: noise must be {NOISE}, got nan"),
    (lambda: xdl.datasets.moons(noise=1e40), f"moons: noise must be {NOISE}, got 1e+40"),  # X was inf in float32
    (lambda: xdl.datasets.circles(noise="a"), f"circles: noise must be {NOISE}, got 'a'"),
    (lambda: xdl.datasets.circles(factor="a"), "circles: factor must be in (0, 1), got 'a'"),
    (lambda: xdl.datasets.spirals(seed=-1), "spirals: seed must be an integer ≥ 0, got -1"),
    (lambda: xdl.datasets.spirals(m=5, classes=10), "spirals: classes=10 arms need at least as many examples, got m=5"),
    (lambda: xdl.datasets.moons(m=1.5), "m (number of examples) must be an integer ≥ 2, got 1.5")])
def test_dataset_arguments_are_named(call, message):
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        call()
    assert xdl.datasets.spirals(m=8, classes=np.int64(4))[1].max() == 3  # a NumPy integer is an integer


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=120, deadline=None, derandomize=True)  # the same examples on every run: CI stays green or red
@given(m=st.integers(3, 300), classes=st.integers(1, 12), extra=st.integers(0, 300), dev=st.floats(0.05, 0.4),
       test=st.floats(0.0, 0.4), seed=st.integers(0, 2**31))
def test_a_split_is_a_partition_that_keeps_class_shares(m, classes, extra, dev, test, seed):
    """Whatever the sizes: every example in exactly one part, dev and test their asked sizes, and
    (stratified) each class's count in a part within the docstring's bound of its share: 1 + (C − 2)·p
    in dev and train, twice that in test (a prefix of the stratified order holds each class within
    one of its share, and the classes' misses add up in the others'; dev is one prefix, train the
    rest of one, test the difference of two). ``extra`` examples of class 0 make one class large
    beside small ones, where the "within two" the docstring said did not hold (3 small classes: 22
    examples of the large one in a test part whose share of it is 19.6)."""
    m += extra
    n_dev, n_test = max(round(dev * m), 1), (max(round(test * m), 1) if test else 0)
    hypothesis.assume(n_dev + n_test < m)  # (none left to train on is refused: tested on its own)
    y = np.concatenate([np.arange(m - extra) % classes, np.zeros(extra, dtype=int)])
    X = np.arange(m, dtype=np.float64)[:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (a class of one, when m < 2·classes: shuffled, said)
        s = split(X, y, dev=dev, test=test, seed=seed)
    ids = np.concatenate([s.X_train[:, 0], s.X_dev[:, 0], s.X_test[:, 0]])
    assert sorted(ids.tolist()) == list(range(m))
    assert len(s.X_dev) == n_dev and len(s.X_test) == n_test
    counts = np.bincount(y, minlength=classes)
    if counts.min() >= 2:
        bound = 1 + (classes - 2) * counts / m
        for part, times in ((s.y_train, 1), (s.y_dev, 1), (s.y_test, 2)):
            expected = counts * len(part) / m
            assert np.all(np.abs(np.bincount(part, minlength=classes) - expected) <= times * bound + 1e-9)


def test_a_large_class_beside_small_ones_keeps_the_documented_shares():
    """The case the docstring's old bound ("within two examples") missed: its test part held 22 of the
    large class for a share of 19.6, and none of the three small ones; 1 + (C − 2)·p bounds it."""
    y = np.repeat([0, 1, 2, 3], [100, 4, 4, 4])
    s = split(np.zeros((len(y), 1)), y, seed=0)
    got, share = np.bincount(s.y_test, minlength=4), np.bincount(y) * len(s.y_test) / len(y)
    assert np.abs(got - share).max() > 2  # (what "within two" promised, not what the interleaved order gives)
    assert np.all(np.abs(got - share) <= 2 * (1 + 2 * np.bincount(y) / len(y)))


def test_minibatches_without_a_seed_follow_xdl_seed_as_pytorch_s_shuffling_follows_manual_seed():
    from xdl.data import minibatches

    def order():
        xdl.seed(0)
        return [b.tolist() for _, b in minibatches(np.zeros((10, 2)), np.arange(10), 4)]

    assert order() == order()


def test_split_returns_the_rows_of_x_as_they_are():
    X = (np.arange(10, dtype=np.int64) + 2**60 + 1).reshape(10, 1)  # beyond float64's whole numbers
    s = split(X, np.arange(10) % 2)
    assert s.X_train.dtype == np.int64 and set(s.X_train[:, 0].tolist()) <= set(X[:, 0].tolist())
    assert split(np.zeros((10, 4), np.uint8), np.arange(10) % 2).X_dev.dtype == np.uint8


def test_a_splits_repr_gives_each_parts_shape_and_dtype_not_its_values():
    # a notebook cell ending with split(X, y) printed all six arrays: 3,400 characters of the digits' values
    X, y = xdl.datasets.digits()
    s = split(X, y, seed=0)
    assert repr(s) == ("Split(X_train: (1079, 64) float32, y_train: (1079,) int64, X_dev: (359, 64) float32, "
                       "y_dev: (359,) int64, X_test: (359, 64) float32, y_test: (359,) int64)")
    pd = pytest.importorskip("pandas")
    frames = split(pd.DataFrame(X[:100, :3], columns=list("abc")), pd.Series(y[:100]), seed=0)
    assert repr(frames).startswith("Split(X_train: DataFrame (60, 3), y_train: Series (60,) int64, X_dev: DataFrame")
    assert repr(frames) == str(frames) and len(repr(frames)) < 250


def test_ewa_takes_lists_and_names_a_ragged_sequence():
    from xdl.ewa import EWA, ewa

    np.testing.assert_array_equal(EWA(0.9).update([1, 2]), [1.0, 2.0])  # was list × float: a TypeError
    with pytest.raises(ValueError, match=r"ewa: values must be rectangular \(every item of the same shape\)"):
        ewa([[1, 2], [3]])


def test_a_failed_ewa_update_leaves_the_average_as_it_was():
    from xdl.ewa import EWA

    average = EWA(0.9)
    average.update(5.0)
    for bad in ("x", None, [1, "a"]):
        with pytest.raises(TypeError, match="EWA.update: x must be a real number or an array of them"):
            average.update(bad)
    assert average.t == 1 and average.update(5.0) == pytest.approx(5.0)


def test_diagnosis_at_exact_thresholds_does_not_depend_on_rounding():
    from xdl import diagnose

    def first_step(train, dev, base):
        return diagnose({"train_accuracy": train, "dev_accuracy": dev}, base_error=base).next_steps[0]

    # a variance of exactly half the tolerance (1 point) and a train error exactly 2 points below the base
    assert len({first_step(t / 100, (t - 1) / 100, 1 - t / 100)[:30] for t in range(10, 95)}) == 1
    assert not any(first_step(a, a, round(1 - a - 0.02, 10)).startswith("the training error is below the base")
                   for a in (0.92, 0.95, 0.5))


def test_warmup_and_initializers_check_what_they_are_given():
    from xdl.optim import schedules

    with pytest.raises(TypeError, match=r"warmup: schedule must take one argument.*Keras schedule\(epoch, lr\)"):
        schedules.warmup(lambda epoch, lr: lr, 3)
    for make in (xdl.init.zeros, xdl.init.normal(0.1)):
        for shape in ((True, 3), (2.0, 3), (0, 3)):
            with pytest.raises(ValueError, match=r"shape\[0\] must be a positive integer"):
                make(shape)


def test_passes_over_a_whole_set_take_their_result_and_one_pieces_temporaries(monkeypatch, rng, peak_bytes):
    """Standardizing a set (`Standardizer.transform`, a `Standardize` layer first under predict,
    evaluate and fit) and checking it (finite; within the model's dtype) walk it in pieces of
    rows (`xdl.data.validation.pieces`): peak = the result + one piece's float64 values and
    flags. Whole, the float64 values, their magnitudes and the flags took 4.25× a float32 set,
    1.27 GB beside a 299 MB one (the check: 0.25×, and 1× a float64 set's for a float32 model)."""
    monkeypatch.setattr(xdl.data.validation, "PIECE_VALUES", 2_000)  # pieces far smaller than the set
    X = rng.standard_normal((20_000, 50)).astype(np.float32)  # 4 MB
    s = Standardizer().fit(X)
    model = xdl.nn.mlp(50, [8], 2, standardize=s.layer())
    assert peak_bytes(lambda: s.transform(X)) < 1.1 * X.nbytes  # its result (was 4.25×)
    assert peak_bytes(lambda: s.inverse_transform(X)) < 1.1 * X.nbytes
    assert peak_bytes(lambda: model.predict(X)) < 1.25 * X.nbytes  # the standardized set, the outputs (was 4.25×)
    assert peak_bytes(lambda: check_features(X)) < 0.05 * X.nbytes  # (was 0.25×: the flags)
    X64 = X.astype(np.float64)
    assert peak_bytes(lambda: check_features(X64, dtype=np.float32)) < 0.05 * X64.nbytes  # (was 1.25×: |X|)
    wide = xdl.nn.mlp(50, [8], 50)  # outputs as large as the set: written into the result batch by batch
    assert peak_bytes(lambda: wide.predict_outputs(X)) < 1.4 * X.nbytes  # (was 2×: the batches, then their concatenation)
    whole = ((X64 - s.mean) / s.scale).astype(np.float32)  # the same values as computed whole, to the bit
    np.testing.assert_array_equal(s.transform(X), whole)


def test_a_value_refused_in_a_later_piece_is_named_by_its_example_in_the_set(monkeypatch):
    monkeypatch.setattr(xdl.data.validation, "PIECE_VALUES", 4)  # two rows of two features a piece
    X = np.zeros((10, 2))
    X[7, 1] = 1e10
    model = xdl.nn.mlp(2, [4], 2, standardize=xdl.nn.Standardize(2, mean=[0.0, 0.0], scale=[1.0, 1e-30]))
    with pytest.raises(ValueError, match=r"^X's example 7, feature 1 \(1e\+10\) lies 1e\+40 standard deviations"):
        model.predict(X)
    with pytest.raises(ValueError, match=r"^X has values beyond float32's range .*first at example 7, feature 1\)"):
        check_features(X * 1e30, dtype=np.float32)
    X[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"^X contains NaN or Inf \(first at example 7, feature 1\)$"):
        check_features(X)
    s = Standardizer()
    s.mean, s.scale = np.zeros(2), np.array([1e300, 1.0])  # 1e10 σ is beyond float64
    with pytest.raises(ValueError, match=r"^Standardizer.inverse_transform: X's example 5, feature 0 "):
        s.inverse_transform(np.array([[0.0, 0.0]] * 5 + [[1e10, 0.0]]))


def test_a_digest_of_data_in_fortran_order_copies_a_piece_at_a_time(monkeypatch, rng, peak_bytes):
    """`data_digest` (what EarlyStopping, Checkpoint and fit_many record of the data) hashes the
    C-order bytes a piece of rows at a time: a Fortran-ordered X (a pandas frame's to_numpy()) was
    copied whole first, 1× the set. The digest is that of the whole array's bytes."""
    import hashlib

    from xdl.train.provenance import data_digest

    monkeypatch.setattr(xdl.data.validation, "PIECE_VALUES", 2_000)
    X, y = np.asfortranarray(rng.standard_normal((20_000, 50)).astype(np.float32)), np.arange(20_000)
    assert peak_bytes(lambda: data_digest(X, y)) < 0.05 * X.nbytes
    whole = hashlib.sha1()
    for array in (np.ascontiguousarray(X), y):
        whole.update(str((array.dtype.str, array.shape)).encode())
        whole.update(array.data)
    assert data_digest(X, y) == {"examples": 20_000, "features": 50, "sha1": whole.hexdigest()}


def test_an_ewa_is_0_before_its_first_value_and_a_failed_update_counts_no_step():
    """v₀ = 0 (bias-corrected too: no 0/(1 − β⁰)); an update whose arithmetic fails (a value of another
    shape than the average's) leaves t as it was, so the corrections v_t/(1 − βᵗ) after it stay right."""
    from xdl.ewa import EWA

    average = EWA(0.9)
    assert average.corrected == 0.0
    average.update([1.0, 2.0])
    with pytest.raises(ValueError):
        average.update([1.0, 2.0, 3.0])
    assert average.t == 1
    np.testing.assert_allclose(average.update([1.0, 2.0]), [1.0, 2.0])


def test_split_defaults_change_only_beyond_a_million_examples():
    """20% each up to 1,000,000 examples ("up to about a million"), 10,000 each beyond."""
    assert holdout_sizes(1_000_000) == (200_000, 200_000)
    assert holdout_sizes(1_000_001) == (10_000, 10_000)


def test_a_numpy_fraction_of_holdout_sizes_is_taken_in_float64():
    """round(f·m) with f as a float64: a NumPy float16 or float32 fraction times the int m stayed in
    its own dtype (NEP 50), so np.float16(0.2) of 100,000 examples overflowed to inf (an
    OverflowError, from split too) and np.float32(0.2) of 2²⁴ + 11 examples gave 3,355,446 for
    3,355,445.45 (the product rounded to float32)."""
    assert holdout_sizes(100_000, np.float16(0.2), 0) == (19_995, 0)  # (float16's 0.2 is 0.199951…)
    assert holdout_sizes(2**24 + 11, np.float32(0.2), 0) == (3_355_445, 0)


def test_continuous_targets_of_several_columns_are_shuffled_not_stratified(rng):
    """Rows ≥ 0 that do not sum to 1 are a regression's targets, not soft labels: split shuffles them
    as stratify=False does (their argmax is no class; a stratified split warned of a lone one)."""
    X, Y = np.arange(40.0)[:, None], rng.random((40, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parts = split(X, Y, seed=1)
    for got, expected in zip(parts, split(X, Y, seed=1, stratify=False)):
        np.testing.assert_array_equal(got, expected)


def test_standardizer_statistics_of_float32_data_are_computed_in_float64(rng):
    """μ in float64 (as fit says): summed in float32, 100,000 values at 1000 ± 1 moved μ by ~3e-3,
    every standardized value with it."""
    X = (1000 + rng.standard_normal((100_000, 2))).astype(np.float32)
    s = Standardizer().fit(X)
    X64 = X.astype(np.float64)
    np.testing.assert_allclose(s.mean, X64.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(s.scale, X64.std(axis=0), rtol=1e-9)
    assert np.abs(s.transform(X).mean(axis=0, dtype=np.float64)).max() < 1e-4


def test_standardizer_statistics_are_the_same_for_the_same_numbers_in_any_layout(rng):
    """μ = Σx / m and σ² = Σ(x − μ)² / m of each feature do not depend on how X lies in memory:
    NumPy sums a column contiguous in memory (Fortran order, a pandas frame's ``to_numpy()``)
    pairwise and across C-ordered rows one by one, so a frame's statistics were 1 ulp from its
    array's, and a float64 model standardized by them trained to other weights."""
    pandas = pytest.importorskip("pandas")
    X = rng.standard_normal((40, 5))
    wide = np.zeros((40, 10))
    wide[:, ::2] = X
    reference = Standardizer().fit(X)
    for same in (np.asfortranarray(X), pandas.DataFrame(X), wide[:, ::2], np.repeat(X, 2, axis=0)[::2]):
        s = Standardizer().fit(same)
        np.testing.assert_array_equal(s.mean, reference.mean)
        np.testing.assert_array_equal(s.scale, reference.scale)


def test_a_dev_error_below_the_training_error_by_exactly_the_tolerance_is_not_named():
    """variance = dev error − train error; dev better by exactly the tolerance (2 points) is within
    it, whatever the rounding of 1 − 0.92 − (1 − 0.90) = −0.020000000000000018."""
    from xdl import diagnose

    for train, dev in ((0.90, 0.92), (0.5, 0.52), (0.97, 0.99), (0.6, 0.62)):
        steps = diagnose({"train_accuracy": train, "dev_accuracy": dev}).next_steps
        assert not any(step.startswith("the dev error is") for step in steps), (train, dev)
    assert diagnose({"train_accuracy": 0.90, "dev_accuracy": 0.93}).next_steps[0].startswith("the dev error is")


def test_a_gap_of_exactly_the_tolerance_in_float32_accuracies_is_not_high():
    """float32 accuracies (a Keras history's) are off by up to 6e-8: 0.92 and 0.90 read as a variance
    of 2.0000003% and "high bias and high variance", where the same float64 ones read "high bias"."""
    from xdl import diagnose

    for kind in (float, np.float32):
        assert diagnose({"train_accuracy": kind(0.92), "dev_accuracy": kind(0.90)}).verdict == "high bias", kind


def test_fitting_a_standardizer_takes_one_pieces_temporaries(monkeypatch, rng, peak_bytes):
    """`Standardizer.fit` walks X in pieces of rows: μ = Σx / m, then σ² = Σ(x − μ)² / m, one
    piece's float64 deviations at a time. Whole (``X.var``), X − μ was a float64 copy of the set:
    2× a float32 one, and 12× a uint8 one (cast to float32 first) — 941 MB beside 78 MB of pixels;
    `transform` cast integers whole too, beside its result."""
    monkeypatch.setattr(xdl.data.validation, "PIECE_VALUES", 2_000)
    X = rng.standard_normal((20_000, 50)).astype(np.float32) * 3 + 100  # 4 MB
    pixels = rng.integers(0, 256, (20_000, 50), dtype=np.uint8)  # 1 MB
    assert peak_bytes(lambda: Standardizer().fit(X)) < 0.05 * X.nbytes  # (was 2×)
    assert peak_bytes(lambda: Standardizer().fit(pixels)) < 0.2 * pixels.nbytes  # (was 12×)
    for data in (X, pixels, pixels > 128):  # the two-pass moments, as NumPy's whole-array ones
        s = Standardizer().fit(data)
        np.testing.assert_allclose(s.mean, data.mean(axis=0, dtype=np.float64), rtol=1e-13)
        np.testing.assert_allclose(s.scale, data.std(axis=0, dtype=np.float64), rtol=1e-12)
    s = Standardizer().fit(pixels)  # transform: its float32 result, integers not cast whole first
    assert peak_bytes(lambda: s.transform(pixels)) < 4.3 * pixels.nbytes  # (was 8×)
    np.testing.assert_array_equal(s.transform(pixels), s.transform(pixels.astype(np.float32)))


def test_predictions_are_taken_batch_by_batch_not_from_every_output(monkeypatch, rng, peak_bytes):
    """`predict` keeps each batch's classes and `predict_proba` its probabilities as the batch
    comes: every example's outputs kept first took 800 MB of logits for 1.6 MB of classes (200,000
    examples, 1,000 classes), and predict_proba a float64 copy of them and its softmax's
    temporaries beside (5× its result). Integer X before a `Standardize` is read a piece at a time,
    not cast to float32 whole first (2× the network's inputs for uint8 pixels)."""
    monkeypatch.setattr(xdl.data.validation, "PIECE_VALUES", 2_000)
    X = rng.standard_normal((4_000, 10)).astype(np.float32)  # 160 kB
    model = xdl.nn.mlp(10, [8], 500)  # 8 MB of logits
    logits = model.predict_outputs(X, batch_size=256)
    assert peak_bytes(lambda: model.predict(X, batch_size=256)) < 0.25 * logits.nbytes  # (was 1.29×)
    np.testing.assert_array_equal(model.predict(X, batch_size=256), logits.argmax(axis=1))
    whole = xdl.functions.classification.softmax_array(np, logits.astype(np.float64)).astype(np.float32)
    assert peak_bytes(lambda: model.predict_proba(X, batch_size=256)) < 1.6 * logits.nbytes  # (was 5×)
    np.testing.assert_array_equal(model.predict_proba(X, batch_size=256), whole)  # row by row: to the bit
    pixels = rng.integers(0, 256, (20_000, 50), dtype=np.uint8)
    s = Standardizer().fit(pixels)
    scaled = xdl.nn.mlp(50, [8], 2, standardize=s.layer())
    assert peak_bytes(lambda: scaled.predict(pixels)) < 4.5 * pixels.nbytes  # the float32 inputs (was 8×)
    np.testing.assert_array_equal(scaled.predict(pixels), scaled.predict(pixels.astype(np.float32)))


def test_predict_names_the_first_row_whose_outputs_are_not_finite_in_a_later_batch():
    """Outputs checked batch by batch: the count over every batch, the first row by its place in X."""
    model = xdl.nn.Sequential(xdl.nn.Dense(2, 3))
    model[0].weight.data[...] = 1e30
    X = np.zeros((10, 2), dtype=np.float32)
    X[[6, 8]] = 1e10  # 2e40: beyond float32, Inf outputs
    with np.errstate(over="ignore"), \
            pytest.raises(ValueError, match=r"outputs are NaN or Inf for 2 of 10 rows \(the first: row 6\)"):
        model.predict(X, batch_size=4)
    with np.errstate(over="ignore"), pytest.raises(ValueError, match=r"for 2 of 10 rows \(the first: row 6\)"):
        model.predict_proba(X, batch_size=4)


def test_fit_and_evaluate_make_the_network_inputs_of_integer_x_once(monkeypatch, rng, peak_bytes):
    """A Trainer's X check leaves integers as they are (`Module.checked_input`'s ``cast=False``):
    the network's float32 inputs are made of them once (`network_data`), 4× uint8 pixels. Cast by
    the check first, fit and evaluate held both, 8×; the run is the same, to the bit."""
    from xdl.train import Trainer

    monkeypatch.setattr(xdl.data.validation, "PIECE_VALUES", 2_000)
    pixels, y = rng.integers(0, 256, (20_000, 50), dtype=np.uint8), rng.integers(0, 2, 20_000)

    def trainer():
        xdl.seed(0)
        model = xdl.nn.mlp(50, [4], 2, standardize=Standardizer().fit(pixels).layer())
        return Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.SGD(model, lr=0.1), batch_size=500,
                       epochs=1, progress=False)
    cast = trainer()
    cast.fit(pixels.astype(np.float32), y)  # (first: the modules a first fit imports are no data's)
    ran = trainer()
    assert peak_bytes(lambda: ran.fit(pixels, y)) < 4.6 * pixels.nbytes  # (was 8.4×)
    assert peak_bytes(lambda: ran.evaluate(pixels, y)) < 4.6 * pixels.nbytes  # (was 8.1×)
    assert ran.history.records[-1]["train_cost"] == cast.history.records[-1]["train_cost"]
    np.testing.assert_array_equal(ran.model[1].weight.data, cast.model[1].weight.data)


def test_minibatches_iterated_again_make_the_next_epoch_reshuffled_as_a_dataloader():
    """``for epoch in range(3): for Xb, yb in batches`` with one ``batches = minibatches(…)``, PyTorch's
    habit: a generator gave the first epoch only (the others silently empty); each pass now yields
    every example once, epoch e in the e-th order drawn from the seed."""
    X, y = np.arange(10)[:, None], np.arange(10)
    batches = minibatches(X, y, 4, seed=0)
    assert len(batches) == 3
    epochs = [np.concatenate([yb for _, yb in batches]).tolist() for _ in range(3)]
    assert all(sorted(e) == list(range(10)) for e in epochs) and epochs[0] != epochs[1]
    again = minibatches(X, y, 4, seed=0)
    assert [np.concatenate([yb for _, yb in again]).tolist() for _ in range(3)] == epochs  # same seed, same epochs
    assert next(iter(minibatches(X, y, 4, shuffle=False)))[1].tolist() == [0, 1, 2, 3]



def test_a_pass_broken_off_leaves_the_next_for_a_whole_pass_as_a_dataloader():
    """``for Xb, yb in batches: break`` (a look at the first batch), then the training loop: the
    next ``for`` went on with the broken pass, so the first epoch trained on 6 of 10 examples,
    silently; a DataLoader's next ``for`` is a new pass, and so is it here. ``next`` takes the
    batches of the pass drawn at the call, as the first ``for`` would have."""
    X, y = np.arange(10)[:, None], np.arange(10)
    batches = minibatches(X, y, 4, seed=0)
    for _, first in batches:
        break
    assert [len(yb) for _, yb in batches] == [4, 4, 2]
    assert next(minibatches(X, y, 4, seed=0))[1].tolist() == first.tolist()
    taken = minibatches(X, y, 4, seed=0)
    next(taken)
    assert sorted(np.concatenate([yb for _, yb in taken]).tolist()) == list(range(10))


@pytest.mark.parametrize("dataset, module", [("digits", "sklearn"), ("mnist1d", "mnist1d")])
def test_a_dataset_s_package_that_fails_to_import_is_told_from_one_not_installed(monkeypatch, dataset, module):
    """mnist1d installed, its matplotlib built for NumPy 1 failing to import: "the mnist1d dataset
    needs the mnist1d package: pip install 'xdl[data]'", which changed nothing."""
    import builtins

    real = builtins.__import__
    error = ImportError("numpy.core.multiarray failed to import")

    def importing(name, *args, **kwargs):
        if name == module or name.startswith(module + "."):
            raise error
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", importing)
    with pytest.raises(ImportError, match=r"which is installed but failed to import: numpy.core.multiarray failed "
                                          r"to import \(pip install --upgrade 'xdl\[data\]'"):
        xdl.datasets.load(dataset)
    error = ModuleNotFoundError(f"No module named {module!r}", name=module)
    with pytest.raises(ImportError, match=r"needs [^,]*: pip install 'xdl\[data\]'$"):
        xdl.datasets.load(dataset)


def test_split_of_uint8_images_makes_no_float_copy_to_check_them(monkeypatch, rng, peak_bytes):
    """`split` checks X as it is (integers stay integers, as the rows it returns): a float32 copy made
    only for the check took 4× a uint8 set beside the parts' 1×."""
    monkeypatch.setattr(xdl.data.validation, "PIECE_VALUES", 2_000)
    X, y = rng.integers(0, 256, (10_000, 400), dtype=np.uint8), rng.integers(0, 3, 10_000)
    parts = []
    assert peak_bytes(lambda: parts.append(split(X, y, seed=0))) < 2 * X.nbytes  # the parts, 1× (was 5×)
    assert parts[0].X_train.dtype == np.uint8


def test_predict_and_evaluate_cast_x_a_batch_at_a_time_without_a_standardize_layer(monkeypatch, rng, peak_bytes):
    """A model that does not start with a `Standardize` layer takes uint8 pixels or a float64 X cast to
    its dtype a batch at a time by `predict`, `predict_proba` and `Trainer.evaluate`: cast whole, they
    took a float32 copy of the set (4× uint8 pixels, half a float64 set). The results are the same."""
    from xdl.train import Trainer

    monkeypatch.setattr(xdl.data.validation, "PIECE_VALUES", 2_000)  # (the checks' flags: a piece's)
    pixels, y = rng.integers(0, 256, (20_000, 50), dtype=np.uint8), rng.integers(0, 2, 20_000)
    model = xdl.nn.mlp(50, [8], 2)
    trainer = Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.SGD(model, lr=0.1), batch_size=500,
                      epochs=1, progress=False)
    as_float32 = pixels.astype(np.float32)
    expected = model.predict_proba(as_float32, batch_size=1000), trainer.evaluate(as_float32, y, batch_size=1000)
    for X in (pixels, pixels.astype(np.float64)):
        # a batch's inputs and activations, the result (160 kB): the float32 set cast whole was 4 MB beside them
        assert peak_bytes(lambda: model.predict(X, batch_size=1000)) < 1_000_000  # (was 4.25 MB)
        assert peak_bytes(lambda: model.predict_proba(X, batch_size=1000)) < 1_000_000
        assert peak_bytes(lambda: trainer.evaluate(X, y, batch_size=1000)) < 1_000_000
        np.testing.assert_array_equal(model.predict_proba(X, batch_size=1000), expected[0])
        assert trainer.evaluate(X, y, batch_size=1000) == expected[1]


@pytest.mark.parametrize("how", ["copy", "deepcopy", "pickle"])
def test_minibatches_copied_mid_pass_go_on_as_the_original_and_apart_from_it(how):
    """A `Minibatches` sent to a worker process (pickle) or kept aside (``copy.deepcopy``) failed
    with "cannot pickle 'generator' object"; ``copy.copy`` shared the pass, so iterating the copy
    used up the original's, whose next ``for`` yielded nothing. A copy now yields what the original
    would (the rest of the pass, then the same epochs), each apart from the other."""
    import copy
    import pickle

    X, y = np.arange(10)[:, None], np.arange(10)
    copier = {"copy": copy.copy, "deepcopy": copy.deepcopy, "pickle": lambda b: pickle.loads(pickle.dumps(b))}[how]
    batches, reference = minibatches(X, y, 4, seed=0), minibatches(X, y, 4, seed=0)
    assert next(batches)[1].tolist() == next(reference)[1].tolist()
    twin = copier(batches)

    def rest(b):  # the rest of the pass begun, then the next epoch's
        return [next(b)[1].tolist() for _ in range(2)], [yb.tolist() for _, yb in b]

    expected = rest(reference)
    assert rest(twin) == expected
    assert rest(batches) == expected


def test_a_standardizer_prints_whether_it_is_fitted_and_on_how_many_features():
    """It printed as ``<xdl.data.standardizer.Standardizer object at 0x…>``, as `Augment` prints its settings."""
    assert repr(Standardizer()) == "Standardizer()"
    assert repr(Standardizer().fit(np.ones((3, 64)))) == "Standardizer(fitted on 64 features)"
    assert repr(Standardizer().fit(np.arange(3.0).reshape(3, 1))) == "Standardizer(fitted on 1 feature)"
    assert repr(Standardizer().fit(np.zeros((2, 8, 8), np.uint8))) == "Standardizer(fitted on 64 features)"


def test_integers_are_read_in_the_floating_dtype_that_holds_them_exactly():
    """Integers and booleans become the model's dtype (float32 without one, float32 for float16), or
    float64 where a magnitude passes 2**24 — on either side of zero — as float32 holds every integer up to
    2**24 exactly and rounds 2**24 + 1. Reference: that rule written out, over values around the boundary."""
    from xdl.data.validation import check_features

    limit = 2**24
    cases = 0
    for low in (-limit - 2, -limit - 1, -limit, -1, 0):
        for high in (0, 1, limit, limit + 1, limit + 2):
            for dtype in (None, np.float32, np.float64):
                X = np.array([[low, high]], dtype=np.int64)
                wide = dtype == np.float64 or max(high, -low) > limit
                got = check_features(X, dtype=dtype)
                assert got.dtype == (np.float64 if wide else np.float32), (low, high, dtype)
                assert got.tolist() == [[float(low), float(high)]] or not wide
                cases += 1
    assert cases == 75
    assert check_features(np.array([[3, -7]]), dtype=np.float16).dtype == np.float32  # (float16 reads in float32)
    assert check_features(np.array([[True, False]])).dtype == np.float32
    assert check_features(np.array([[True, False]]), dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize("m", [1, 2, 3, 7])
def test_labels_must_number_the_examples_neither_more_nor_fewer(m):
    """`check_labels` refuses fewer labels than examples as it refuses more (a length check of only
    "more" let a short y through to index errors, or to training on the wrong pairs)."""
    for n_labels in range(m + 3):
        if n_labels == m:
            assert check_labels(np.zeros(n_labels, int), m).shape == (m,)
            continue
        with pytest.raises(ValueError, match=rf"^y has {n_labels} labels? for {m} examples? \(X and y must have"):
            check_labels(np.zeros(n_labels, int), m)


def test_a_boolean_option_takes_none_only_where_allowed():
    """`check_bool`: True, False and NumPy's booleans pass; None only with ``allow_none`` (Augment's flip
    of None was read as off, where every other option names what it takes)."""
    from xdl.data.validation import check_bool

    for value in (True, False, np.True_, np.False_):
        assert check_bool(value, "flag") is bool(value)
        assert check_bool(value, "flag", allow_none=True) is bool(value)
    assert check_bool(None, "flag", allow_none=True) is None
    for value in (None, 0, 1, "no", 1.0, [True]):
        with pytest.raises(ValueError, match=rf"^flag must be True or False, got {re.escape(repr(value))}$"):
            check_bool(value, "flag")
    with pytest.raises(ValueError, match=r"^flip must be True or False, got None$"):
        Augment((8, 8), flip=None)


def test_a_number_check_keeps_the_sign_of_an_integer_beyond_floats():
    """`check_number`: a Python int beyond floats is ±inf by its sign, so a bound "> 0" refuses −10**400 (read
    as +inf it passed, an infinite timeout); a bool is no number, whatever ``accept`` takes."""
    from xdl.data.validation import check_number

    assert check_number(10**400, "x", "any", lambda v: True) == np.inf
    assert check_number(-10**400, "x", "any", lambda v: True) == -np.inf
    with pytest.raises(ValueError, match=r"^x must be a number > 0, got -1000"):
        check_number(-10**400, "x", "a number > 0", lambda v: v > 0)
    for flag in (True, False, np.True_):
        with pytest.raises(ValueError, match=rf"^x must be any number, got {flag!r}$"):
            check_number(flag, "x", "any number", lambda v: True)
    assert check_number(np.int8(-3), "x", "any", lambda v: True) == -3.0


def test_standardizer_fit_transform_is_fit_then_transform_as_scikit_learns(rng):
    """fit_transform standardizes X with X's own statistics, all its examples' (reference: scikit-learn's
    StandardScaler), on sets whose halves differ."""
    from sklearn.preprocessing import StandardScaler

    for m in (2, 3, 10, 101):
        X = np.concatenate([rng.normal(0, 1, (m // 2, 3)), rng.normal(5, 4, (m - m // 2, 3))])
        np.testing.assert_allclose(Standardizer().fit_transform(X), StandardScaler().fit_transform(X),
                                   rtol=1e-12, atol=1e-12)


def test_standardizer_refuses_a_spread_that_overflows_float64():
    """Values near float64's limit have a variance beyond it: refused by name, not taken as a constant
    feature (an infinite variance passes the test σ² ≤ m·ε·σ² + (m·ε·μ)², and the feature was left unscaled)."""
    X = np.array([[1.0, 1e308], [2.0, -1e308]])
    with pytest.raises(ValueError, match=r"^Standardizer.fit: the spread of X's feature 1 overflows float64"):
        Standardizer().fit(X)


def test_augment_shifts_are_the_image_moved_with_zeros_where_it_left():
    """Each shifted image is the original moved by some (dy, dx) in [−shift, shift]², the pixels it left
    0 (reference: np.roll with the wrapped rows and columns zeroed), every offset drawn; the images are
    of distinct positive values, so a pixel left where it was (not zero-filled) is told from a moved one."""
    def moved(image, dy, dx):  # pixel (i, j) comes from (i − dy, j − dx), 0 where that lies outside
        h, w = image.shape
        inside = ((0 <= np.arange(h) - dy) & (np.arange(h) - dy < h))[:, None] & \
            ((0 <= np.arange(w) - dx) & (np.arange(w) - dx < w))[None, :]
        return np.where(inside, np.roll(image, (dy, dx), axis=(0, 1)), 0)

    rng = np.random.default_rng(3)
    for h, w, shift in ((4, 5, 2), (3, 3, 1), (6, 2, 1)):
        X = rng.permutation(400 * h * w).reshape(400, h * w) + 1.0
        out = Augment((h, w), shift=shift)(X, np.random.default_rng(0))
        offsets = [(dy, dx) for dy in range(-shift, shift + 1) for dx in range(-shift, shift + 1)]
        seen = set()
        for image, result in zip(X.reshape(-1, h, w), out.reshape(-1, h, w)):
            matches = [o for o in offsets if np.array_equal(result, moved(image, *o))]
            assert len(matches) == 1, (h, w, shift, matches)
            seen.add(matches[0])
        assert seen == set(offsets)


def test_labels_below_zero_are_refused_from_minus_one():
    """A class index of −1 (a "missing" marker) is refused as −5 is, naming the smallest."""
    for labels in ([0, -1], [-1, 1, 2], [2, -7, 0]):
        with pytest.raises(ValueError, match=rf"^y has negative class indices \(min {min(labels)}\)$"):
            check_labels(np.array(labels), len(labels))
    assert check_labels(np.array([0, 1]), 2).tolist() == [0, 1]


def test_augment_shift_is_bounded_by_the_shorter_side():
    """A shift moves an image at most one pixel less than its shorter side (height or width): 3×5
    images take shift 0–2, not 3 or 4 (every pixel of a row would leave the 3 rows)."""
    for h, w in ((3, 5), (5, 3), (4, 4), (2, 9), (1, 6)):
        for shift in range(max(h, w) + 1):
            if shift < min(h, w):
                assert Augment((h, w), shift=shift).shift == shift
                continue
            with pytest.raises(ValueError, match=rf"^shift must be an integer in \[0, {min(h, w)}\), got {shift}$"):
                Augment((h, w), shift=shift)


def test_augment_leaves_the_callers_batch_as_it_was(rng):
    """The batch is augmented in a copy: the caller's array (float, of any layout) is not flipped,
    shifted or made noisy in place, whatever augmentation runs."""
    for options in (dict(flip=True), dict(shift=1), dict(noise=0.5), dict(flip=True, shift=2, noise=0.1)):
        for X in (rng.normal(size=(50, 12)), rng.normal(size=(50, 3, 4)).astype(np.float32),
                  np.asfortranarray(rng.normal(size=(50, 12)))):
            kept = X.copy()
            out = Augment((3, 4), **options)(X, np.random.default_rng(0))
            np.testing.assert_array_equal(X, kept)
            assert out.shape == X.shape and not np.array_equal(out, X)


def test_generated_datasets_lie_on_their_curves_with_independent_noise_per_coordinate():
    """Without noise each point lies on its class's curve, written out here: moons, the upper half of the
    unit circle (class 0) and the lower half of the one centred at (1, 0.5) (class 1), as scikit-learn's
    make_moons; circles, radius 1 (class 0) and ``factor`` (class 1); spirals, arm k at angle 2πk/K + 4r.
    With noise, the same points moved by draws of that spread, apart in x and y (uncorrelated)."""
    for m, seed in ((50, 0), (401, 3)):
        X, y = xdl.datasets.moons(m, noise=0.0, seed=seed)
        x0, y0 = X[:, 0].astype(np.float64), X[:, 1].astype(np.float64)
        centre = np.where(y == 0, 0.0, 1.0), np.where(y == 0, 0.0, 0.5)
        np.testing.assert_allclose(np.hypot(x0 - centre[0], y0 - centre[1]), 1, atol=1e-6)
        assert (np.where(y == 0, y0, -(y0 - 0.5)) >= -1e-6).all()  # upper half, lower half
        for factor in (0.3, 0.8):
            X, y = xdl.datasets.circles(m, noise=0.0, factor=factor, seed=seed)
            np.testing.assert_allclose(np.hypot(X[:, 0], X[:, 1]), np.where(y == 0, 1.0, factor), rtol=1e-6)
        for classes in (2, 3, 5):
            X, y = xdl.datasets.spirals(m, classes=classes, noise=0.0, seed=seed)
            r = np.hypot(X[:, 0], X[:, 1]).astype(np.float64)
            turn = np.arctan2(X[:, 0], X[:, 1]) - (y * 2 * np.pi / classes + 4 * r)  # a whole number of turns
            np.testing.assert_allclose(np.cos(turn), 1, atol=1e-5)
            assert np.bincount(y).tolist() == np.bincount(np.arange(m) % classes).tolist()
    assert xdl.datasets.spirals(3, classes=3)[1].tolist() == [0, 1, 2]  # an example per arm is enough
    clean, _ = xdl.datasets.moons(20000, noise=0.0, seed=1)
    noisy, _ = xdl.datasets.moons(20000, noise=0.1, seed=1)
    residual = (noisy - clean).astype(np.float64)
    np.testing.assert_allclose(residual.std(axis=0), 0.1, rtol=0.05)
    assert abs(np.corrcoef(residual.T)[0, 1]) < 0.05


def test_standardizer_gives_back_values_up_to_the_dtypes_largest_finite_one():
    """A result equal to the dtype's largest finite value is that value, not refused as beyond the
    range (only what would become inf is): a constant zero feature (μ = 0, σ = 1) maps x to itself."""
    s = Standardizer().fit(np.zeros((2, 1)))
    for dtype in (np.float16, np.float32, np.float64):
        high = np.finfo(dtype).max
        X = np.array([[high], [-high]], dtype=dtype)
        for method in (s.transform, s.inverse_transform):
            out = method(X)
            assert out.dtype == dtype and out[:, 0].tolist() == [high, -high]
    high = float(np.finfo(np.float32).max)  # a float64 set for a float32 model: its largest value is in range
    assert check_features(np.array([[high, -high]]), dtype=np.float32).tolist() == [[high, -high]]
    with pytest.raises(ValueError, match=r"^X has values beyond float32's range .* \(first at example 0, feature 1\)"):
        check_features(np.array([[high, -high * 1.0000001]]), dtype=np.float32)
