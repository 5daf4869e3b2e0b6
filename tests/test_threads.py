"""Results do not depend on the number of threads."""
import numpy as np
import pytest

import dlcore


def test_set_get_num_threads(restore_threads):
    dlcore.set_num_threads(1)
    assert dlcore.get_num_threads() == 1
    dlcore.set_num_threads(3)
    assert dlcore.get_num_threads() == 3


@pytest.mark.parametrize("n", [0, -1])
def test_set_num_threads_rejects_below_one(n, restore_threads):
    before = dlcore.get_num_threads()
    with pytest.raises(ValueError, match=str(n)):
        dlcore.set_num_threads(n)
    assert dlcore.get_num_threads() == before


def _run_all(a, b, m1, m2, i):
    ta, tb = dlcore.from_numpy(a), dlcore.from_numpy(b)
    return {
        "sum": ta.sum().numpy().copy(),
        "sum0": ta.sum(0).numpy().copy(),
        "sum1_strided": ta.T[::2].sum(1).numpy().copy(),
        "mean": ta.mean(1).numpy().copy(),
        "var": ta.var(0).numpy().copy(),
        "amax": ta.amax(0).numpy().copy(),
        "argmax": ta.argmax(1).numpy().copy(),
        "ew": (ta * tb + ta.T.T.exp() - 1.5).numpy().copy(),
        "ew_strided": (ta.T * 2 + tb[:, None]).numpy().copy(),
        "matmul": (dlcore.from_numpy(m1) @ dlcore.from_numpy(m2)).numpy().copy(),
        "matmul_t": (dlcore.from_numpy(m1).T @ dlcore.from_numpy(m2)[:, ::2]).numpy().copy(),
        "isum": dlcore.from_numpy(i).sum(0).numpy().copy(),
    }


def test_results_independent_of_thread_count(restore_threads):
    rng = np.random.default_rng(7)
    a = rng.standard_normal((1024, 1031)).astype(np.float32)
    b = rng.standard_normal((1031,)).astype(np.float32)
    m1 = rng.standard_normal((260, 260)).astype(np.float32)
    m2 = rng.standard_normal((260, 190)).astype(np.float32)
    i = rng.integers(-1000, 1000, size=(300, 2000)).astype(np.int64)
    dlcore.set_num_threads(1)
    r1 = _run_all(a, b, m1, m2, i)
    dlcore.set_num_threads(2)
    r2 = _run_all(a, b, m1, m2, i)
    dlcore.set_num_threads(4)
    r4 = _run_all(a, b, m1, m2, i)
    for k in r1:
        for other in (r2, r4):
            if r1[k].dtype.kind == "f":
                np.testing.assert_allclose(other[k], r1[k], rtol=1e-6, atol=1e-6 * max(1.0, float(np.abs(r1[k]).max())),
                                           err_msg=k)
            else:
                np.testing.assert_array_equal(other[k], r1[k], err_msg=k)
    # and the multi-threaded results are right, not just consistent
    np.testing.assert_allclose(r2["sum0"], a.astype(np.float64).sum(0), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(r2["matmul"], m1.astype(np.float64) @ m2, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(r2["isum"], i.sum(0))
    np.testing.assert_array_equal(r2["argmax"], a.argmax(1))
