"""Tests for dlcore.classic (k-nearest neighbours, linear SVM/softmax) and dlcore.models.

NearestNeighbor is checked against a brute-force numpy reference (exact, including
the documented tie rules: equal distances -> lower training index, tied votes ->
smallest label) and against scikit-learn's brute-force KNeighborsClassifier.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import dlcore
from dlcore.classic import LinearClassifier, NearestNeighbor
from dlcore.datasets import load_digits
from dlcore.models import MLP, ConvNet, LeNet5, SmallCNN, build_model

sklearn_neighbors = pytest.importorskip("sklearn.neighbors")
KNeighborsClassifier = sklearn_neighbors.KNeighborsClassifier

SK_METRIC = {"l2": "euclidean", "l1": "manhattan"}


# ---------------------------------------------------------------- reference

def ref_distances(Q, X, distance):
    Q, X = np.asarray(Q, np.float64), np.asarray(X, np.float64)
    if distance == "l2":
        return np.sqrt(((Q[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    return np.abs(Q[:, None, :] - X[None, :, :]).sum(-1)


def ref_knn(Q, X, y, k, distance):
    """(indices, distances, predictions): stable sort = lower index first on equal distances;
    bincount().argmax() = smallest label on a tied vote."""
    D = ref_distances(Q, X, distance)
    idx = np.argsort(D, axis=1, kind="stable")[:, :k]
    dist = np.take_along_axis(D, idx, 1)
    n_classes = int(y.max()) + 1
    pred = np.array([np.bincount(y[row], minlength=n_classes).argmax() for row in idx], dtype=np.int64)
    return idx, dist, pred


def tie_data(seed, n=240, m=160, d=3, levels=3, classes=4):
    """Integer-valued points on a small grid: very many exact distance ties and vote ties."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, levels, (n, d)).astype(np.float64)
    y = rng.integers(0, classes, n).astype(np.int64)
    Q = rng.integers(0, levels, (m, d)).astype(np.float64)
    return X, y, Q


def _np(t):
    return t.numpy() if isinstance(t, dlcore.Tensor) else np.asarray(t)


# ---------------------------------------------------------------- NearestNeighbor

@pytest.mark.parametrize("distance", ["l2", "l1"])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_knn_random_matches_reference_and_sklearn(distance, k):
    rng = np.random.default_rng(100 + k)
    X = rng.standard_normal((300, 7))
    y = rng.integers(0, 5, 300)
    Q = rng.standard_normal((120, 7))
    yq = rng.integers(0, 5, 120)
    clf = NearestNeighbor(k=k, distance=distance).fit(X, y)
    idx, dist = clf.kneighbors(Q)
    r_idx, r_dist, r_pred = ref_knn(Q, X, y, k, distance)
    assert tuple(idx.shape) == (120, k) and tuple(dist.shape) == (120, k)
    assert idx.dtype == dlcore.int64
    np.testing.assert_array_equal(_np(idx), r_idx)
    np.testing.assert_allclose(_np(dist), r_dist, rtol=1e-9, atol=1e-9)
    pred = clf.predict(Q)
    assert isinstance(pred, dlcore.Tensor) and pred.dtype == dlcore.int64 and tuple(pred.shape) == (120,)
    np.testing.assert_array_equal(_np(pred), r_pred)

    sk = KNeighborsClassifier(n_neighbors=k, algorithm="brute", metric=SK_METRIC[distance]).fit(X, y)
    sk_dist, sk_idx = sk.kneighbors(Q)
    np.testing.assert_array_equal(_np(idx), sk_idx)
    np.testing.assert_allclose(_np(dist), sk_dist, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(_np(pred), sk.predict(Q))
    assert clf.score(Q, yq) == pytest.approx(sk.score(Q, yq))
    assert clf.score(Q, yq) == pytest.approx(float((r_pred == yq).mean()))


def test_knn_k1_training_points_are_their_own_neighbours():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((50, 4))
    y = rng.integers(0, 3, 50)
    for distance in ("l1", "l2"):
        clf = NearestNeighbor(k=1, distance=distance).fit(X, y)
        idx, dist = clf.kneighbors(X)
        np.testing.assert_array_equal(_np(idx)[:, 0], np.arange(50))
        np.testing.assert_allclose(_np(dist)[:, 0], 0, atol=1e-7)
        assert clf.score(X, y) == 1.0


@pytest.mark.parametrize("distance", ["l2", "l1"])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_knn_ties_match_reference(distance, k, seed):
    X, y, Q = tie_data(seed)  # 240 points on a 3x3x3 grid: every query has many equidistant neighbours
    r_idx, r_dist, r_pred = ref_knn(Q, X, y, k, distance)
    # the data really has the ties this test is about
    D = ref_distances(Q, X, distance)
    srt = np.sort(D, 1)
    assert (srt[:, k - 1] == srt[:, k]).mean() > 0.5  # a tie at the k-th neighbour for most queries
    if k in (2, 4):
        counts = np.array([np.bincount(y[row], minlength=4) for row in r_idx])
        assert ((counts == counts.max(1, keepdims=True)).sum(1) > 1).sum() > 10  # many tied votes
    clf = NearestNeighbor(k=k, distance=distance).fit(X, y)
    idx, dist = clf.kneighbors(Q)
    np.testing.assert_array_equal(_np(idx), r_idx, err_msg="equal distances must go to the lower training index")
    np.testing.assert_allclose(_np(dist), r_dist, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(_np(clf.predict(Q)), r_pred, err_msg="tied votes must go to the smallest label")


@pytest.mark.parametrize("distance", ["l2", "l1"])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_knn_ties_match_sklearn(distance, k, seed):
    # sparser grid than tie_data's default: still many exact distance ties inside the k nearest and
    # many tied votes, but also queries whose k-nearest *set* is unambiguous
    X, y, Q = tie_data(seed, n=80, m=300, d=4, levels=4)
    clf = NearestNeighbor(k=k, distance=distance).fit(X, y)
    sk = KNeighborsClassifier(n_neighbors=k, algorithm="brute", metric=SK_METRIC[distance]).fit(X, y)
    pred, sk_pred = _np(clf.predict(Q)), sk.predict(Q)
    dist = _np(clf.kneighbors(Q)[1])
    sk_dist, sk_idx = sk.kneighbors(Q)
    # the k smallest distances are the same multiset whatever the tie-breaking
    np.testing.assert_allclose(dist, sk_dist, rtol=0, atol=1e-9)
    # where the k-th and (k+1)-th distances differ, the neighbour *set* is unique, so the vote
    # (including its ties, broken by the smallest label in both) must agree with scikit-learn
    srt = np.sort(ref_distances(Q, X, distance), 1)
    unique_set = srt[:, k - 1] < srt[:, k]
    assert unique_set.sum() >= 30
    if k > 1:  # exact distance ties inside the neighbour set are exercised
        assert (srt[unique_set, 0] == srt[unique_set, 1]).sum() >= 10
    np.testing.assert_array_equal(pred[unique_set], sk_pred[unique_set])
    for i in np.flatnonzero(unique_set):
        assert set(_np(clf.kneighbors(Q[i:i + 1])[0])[0]) == set(sk_idx[i])
    if k in (2, 4):
        counts = np.array([np.bincount(y[sk_idx[i]], minlength=4) for i in np.flatnonzero(unique_set)])
        assert ((counts == counts.max(1, keepdims=True)).sum(1) > 1).any()  # vote ties are exercised


def test_knn_vote_tie_goes_to_smallest_label():
    X = np.array([[0.0], [1.0], [-1.0], [5.0]])
    y = np.array([3, 1, 3, 1])
    # query 0: neighbours (k=2) index 0 (d=0, label 3) and index 1 (d=1, label 1) -> tie -> 1
    clf = NearestNeighbor(k=2, distance="l1").fit(X, y)
    idx, dist = clf.kneighbors(np.array([[0.0]]))
    np.testing.assert_array_equal(_np(idx), [[0, 1]])  # d(1) == d(2) == 1: lower index 1 wins
    np.testing.assert_allclose(_np(dist), [[0.0, 1.0]])
    assert _np(clf.predict(np.array([[0.0]]))).tolist() == [1]
    # k=4: two votes for 3, two votes for 1 -> 1
    assert _np(NearestNeighbor(k=4).fit(X, y).predict(np.array([[0.0]]))).tolist() == [1]


def test_knn_accepts_tensors_and_images():
    xtr, ytr = load_digits(train=True)
    xte, yte = load_digits(train=False)
    clf = NearestNeighbor(k=1).fit(xtr, ytr)  # (N, 1, 8, 8) tensors are flattened
    acc = clf.score(xte, yte)
    assert acc > 0.95
    sk = KNeighborsClassifier(1, algorithm="brute").fit(xtr.numpy().reshape(len(ytr.numpy()), -1), ytr.numpy())
    assert acc == pytest.approx(sk.score(xte.numpy().reshape(len(yte.numpy()), -1), yte.numpy()))


def test_knn_bad_input():
    X = np.random.default_rng(0).standard_normal((10, 3))
    y = np.arange(10) % 3
    for k in (0, -1):
        with pytest.raises(ValueError):
            NearestNeighbor(k=k)
    with pytest.raises((ValueError, TypeError)):
        NearestNeighbor(k=1.5)
    with pytest.raises(ValueError):
        NearestNeighbor(k=1, distance="cosine")
    with pytest.raises(ValueError):
        NearestNeighbor(k=11).fit(X, y)  # k > n
    clf = NearestNeighbor(k=10).fit(X, y)  # k == n is fine
    assert tuple(clf.kneighbors(X[:2])[0].shape) == (2, 10)
    with pytest.raises((TypeError, ValueError)):
        NearestNeighbor(k=1).fit(X, y.astype(np.float64))  # float labels
    with pytest.raises(ValueError):
        NearestNeighbor(k=1).fit(X, y[:-1])  # label count
    with pytest.raises(ValueError):
        NearestNeighbor(k=1).fit(X, -y - 1)  # negative labels
    clf = NearestNeighbor(k=1).fit(X, y)
    with pytest.raises(ValueError):
        clf.predict(np.zeros((2, 4)))  # wrong feature count
    with pytest.raises(ValueError):
        clf.kneighbors(np.zeros((2, 2)))
    with pytest.raises((TypeError, ValueError)):
        clf.score(X, y.astype(np.float32))
    with pytest.raises(RuntimeError):
        NearestNeighbor(k=1).predict(X)  # not fitted


def test_knn_memory_bounded_large():
    """20,000 queries x 5,000 references (D=8): a full distance matrix would be 800 MB."""
    code = textwrap.dedent("""
        import json, resource, time
        import numpy as np
        from dlcore.classic import NearestNeighbor
        rng = np.random.default_rng(0)
        X = rng.standard_normal((5000, 8)); y = rng.integers(0, 10, 5000)
        Q = rng.standard_normal((20000, 8))
        out = {}
        for distance in ("l2", "l1"):
            clf = NearestNeighbor(k=3, distance=distance).fit(X, y)
            clf.predict(Q[:10])
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            t = time.perf_counter()
            idx, dist = clf.kneighbors(Q)
            pred = clf.predict(Q[:2000])
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            i = idx.numpy()
            # spot-check 50 queries against brute force
            sel = np.arange(0, 20000, 400)
            D = (np.sqrt(((Q[sel, None] - X[None]) ** 2).sum(-1)) if distance == "l2"
                 else np.abs(Q[sel, None] - X[None]).sum(-1))
            ok = bool((np.argsort(D, 1, kind="stable")[:, :3] == i[sel]).all())
            out[distance] = {"growth_mb": (after - before) / 1024, "ok": ok, "shape": list(i.shape),
                             "seconds": time.perf_counter() - t}
        print(json.dumps(out))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for distance, o in out.items():
        assert o["ok"], (distance, o)
        assert o["shape"] == [20000, 3]
        assert o["growth_mb"] < 300, f"{distance}: peak RSS grew by {o['growth_mb']:.0f} MB"


# ---------------------------------------------------------------- LinearClassifier

@pytest.fixture(scope="module")
def digits():
    return load_digits(train=True), load_digits(train=False)


@pytest.mark.parametrize("loss", ["svm", "softmax"])
def test_linear_classifier_digits(digits, loss):
    (xtr, ytr), (xte, yte) = digits
    clf = LinearClassifier(loss=loss, reg=1e-4, lr=0.1, epochs=60, batch_size=200)
    assert clf.fit(xtr, ytr) is clf
    acc = clf.score(xte, yte)
    assert acc >= 0.90, f"{loss}: test accuracy {acc:.3f}"
    pred = clf.predict(xte)
    assert pred.dtype == dlcore.int64 and tuple(pred.shape) == (xte.shape[0],)
    assert acc == pytest.approx(float((pred.numpy() == yte.numpy()).mean()))
    scores = clf.decision_function(xte)
    assert tuple(scores.shape) == (xte.shape[0], 10)
    np.testing.assert_array_equal(scores.numpy().argmax(1), pred.numpy())
    assert len(clf.loss_history_) == 60
    assert clf.loss_history_[-1] < clf.loss_history_[0]


def test_linear_classifier_deterministic(digits):
    (xtr, ytr), (xte, _) = digits
    a = LinearClassifier(loss="svm", epochs=3, seed=5).fit(xtr, ytr).decision_function(xte).numpy()
    b = LinearClassifier(loss="svm", epochs=3, seed=5).fit(xtr, ytr).decision_function(xte).numpy()
    np.testing.assert_array_equal(a, b)


def test_linear_classifier_bad_input(digits):
    (xtr, ytr), _ = digits
    for bad in ("hinge", "SVM", "", "l2"):
        with pytest.raises(ValueError):
            LinearClassifier(loss=bad)
    for kwargs in ({"reg": -1.0}, {"lr": 0.0}, {"epochs": 0}, {"batch_size": 0}):
        with pytest.raises(ValueError):
            LinearClassifier(**kwargs)
    with pytest.raises(RuntimeError):
        LinearClassifier().predict(xtr)
    clf = LinearClassifier(epochs=1).fit(xtr, ytr)
    with pytest.raises(ValueError):
        clf.predict(np.zeros((3, 10), np.float32))
    with pytest.raises((TypeError, ValueError)):
        LinearClassifier(epochs=1).fit(xtr, ytr.numpy().astype(np.float64))


# ---------------------------------------------------------------- models

def _x(*shape):
    return dlcore.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32))


def test_model_output_shapes():
    out = MLP(64, [32, 16], 10)(_x(5, 1, 8, 8))
    assert tuple(out.shape) == (5, 10)
    assert tuple(MLP(12, 7, 3)(_x(2, 12)).shape) == (2, 3)
    assert tuple(LeNet5()(_x(3, 1, 28, 28)).shape) == (3, 10)
    assert tuple(LeNet5(3, 7, 32)(_x(2, 3, 32, 32)).shape) == (2, 7)
    assert tuple(LeNet5(1, 10, 16)(_x(2, 1, 16, 16)).shape) == (2, 10)
    assert tuple(SmallCNN()(_x(4, 1, 8, 8)).shape) == (4, 10)
    assert tuple(SmallCNN(3, 5, 16)(_x(2, 3, 16, 16)).shape) == (2, 5)
    assert tuple(ConvNet()(_x(2, 3, 32, 32)).shape) == (2, 10)
    for name, c, s in (("mlp", 1, 8), ("cnn", 1, 8), ("lenet", 1, 28), ("convnet", 3, 32)):
        m = build_model(name, c, s, 10)
        m.eval()
        assert tuple(m(_x(2, c, s, s)).shape) == (2, 10), name
    with pytest.raises(ValueError):
        build_model("resnet", 1, 8, 10)


@pytest.mark.parametrize("size", [4, 8, 10, 11])
def test_lenet_too_small_raises(size):
    with pytest.raises(ValueError, match="LeNet5"):
        LeNet5(1, 10, size)
    with pytest.raises(ValueError):
        build_model("lenet", 1, size, 10)


def test_lenet_small_input_to_28x28_model_raises():
    with pytest.raises(ValueError):
        LeNet5()(_x(2, 1, 8, 8))


def test_model_backward_and_parameters():
    m = SmallCNN()
    out = m(_x(3, 1, 8, 8))
    out.sum().backward()
    params = list(m.parameters())
    assert params and all(p.grad is not None for p in params)
    assert m.num_parameters() == sum(int(np.prod(p.shape)) for p in params)
