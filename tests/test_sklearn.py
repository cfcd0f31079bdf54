"""xdl.sklearn.MLPClassifier follows scikit-learn's estimator conventions."""

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import RandomizedSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import xdl  # noqa: E402
from xdl.sklearn import MLPClassifier  # noqa: E402


def labelled_moons():
    X, y = xdl.datasets.moons(400, seed=0)
    return X, np.array(["left", "right"])[y]


def test_fit_predict_proba_score_with_string_labels():
    X, y = labelled_moons()
    clf = MLPClassifier(hidden=(32, 32), lr=1e-2, epochs=40).fit(X, y)
    assert list(clf.classes_) == ["left", "right"]
    assert set(clf.predict(X)) <= {"left", "right"}
    proba = clf.predict_proba(X)
    assert proba.shape == (400, 2) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert clf.score(X, y) > 0.9
    with pytest.raises(ValueError, match="3 features, the model expects 2"):
        clf.predict(np.zeros((2, 3)))


def test_clone_pipeline_and_randomized_search():
    X, y = labelled_moons()
    assert clone(MLPClassifier(hidden=(4,), lr=0.1)).get_params()["lr"] == 0.1
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden=(8,), epochs=5))
    search = RandomizedSearchCV(pipe, {"mlpclassifier__lr": [1e-3, 1e-2], "mlpclassifier__hidden": [(8,), (16, 16)]},
                                n_iter=2, cv=2, random_state=0)
    search.fit(X, y)
    assert set(search.best_params_) == {"mlpclassifier__lr", "mlpclassifier__hidden"}
    assert search.predict(X[:5]).shape == (5,)


def test_early_stopping_and_bad_input():
    X, y = labelled_moons()
    clf = MLPClassifier(hidden=(16,), epochs=200, early_stopping=True, patience=3, lr=0.05).fit(X, y)
    assert clf.history_.stopped_epoch is not None and len(clf.history_) < 200
    with pytest.raises(ValueError, match="single class"):
        MLPClassifier().fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="labels for the 400 examples"):
        MLPClassifier().fit(X, y[:-1])
    with pytest.raises(ValueError, match="optimizer must be one of"):
        MLPClassifier(optimizer="lbfgs").fit(X, y)
