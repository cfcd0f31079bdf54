"""Shared fixtures: `backend` runs a test on numpy, and on cupy (marker ``gpu``) where a GPU answers."""

import json
import weakref

import numpy as np
import pytest

import xdl
from xdl.backend import BackendError, NumpyBackend, get_backend

# the stand-in for CuPy (test_fake_cupy.py): imported only where its runs put it first on the path, never by
# --doctest-modules collecting its modules here, which would make it the process's cupy
collect_ignore = ["fakecupy"]


# gpu tests never yet run on a device (the H200 run of 2026-12-04 predates them or their kernels): run first, so
# that a device check stopped by its time limit (benchmarks/gpu_checks.sh) has their results before the others'.
# (file, fragment of the test's name); an empty fragment takes the whole file.
FIRST_ON_A_DEVICE = (
    ("test_kernels.py", "tanh_sigmoid_and_leaky_relu"), ("test_kernels.py", "bce_and_mse"),
    ("test_kernels.py", "penalty"), ("test_kernels.py", "relu_dropout"), ("test_kernels.py", "softmax_cross_entropy"),
    ("test_kernels.py", "batchnorm"), ("test_kernels.py", "update_its_kernel_does_not_take"),
    ("test_kernels.py", "dropout_kernel_unaligned"),
    ("test_many.py", "batch_norm"), ("test_nn.py", "batchnorm"), ("test_autodiff.py", "batch_norm"),
    ("test_host_syncs.py", ""), ("test_graph.py", "captured"), ("test_penalty.py", ""),
)


def device_priority(item) -> int:
    """The place of ``item``'s entry in `FIRST_ON_A_DEVICE` (a gpu test of it), else the entries' count (any other)."""
    if item.get_closest_marker("gpu") is not None:
        for place, (file, fragment) in enumerate(FIRST_ON_A_DEVICE):
            if item.path.name == file and fragment in getattr(item, "originalname", item.name):
                return place
    return len(FIRST_ON_A_DEVICE)


def pytest_collection_modifyitems(config, items):
    """The gpu tests of `FIRST_ON_A_DEVICE` before every other test, in its entries' order (a stable sort: each
    entry's tests, and the others, stay in their collected order)."""
    items.sort(key=device_priority)


def cupy_available() -> bool:
    try:
        get_backend("cupy")
        return True
    except BackendError:
        return False


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend(request):
    """The backend under test, made current for the duration of the test."""
    if request.param == "cupy" and not cupy_available():
        pytest.skip("cupy backend needs CuPy and an NVIDIA GPU")
    with xdl.use(request.param) as b:
        xdl.seed(0)
        yield b


@pytest.fixture(autouse=True)
def _allocator_left_alone(monkeypatch):
    """The xdl command sets glibc's malloc thresholds for its process (`keep_freed_memory`); called
    in the test process, it must not change pytest's."""
    import xdl.cli

    monkeypatch.setattr(xdl.cli, "keep_freed_memory", lambda: False)


@pytest.fixture(autouse=True)
def _control_files_written_whole(monkeypatch):
    """A control file a test writes is whole at once: read at the next epoch's end, not left to settle
    (`Control` leaves a file modified within `SETTLE_SECONDS` for later; its own test checks that)."""
    import xdl.train.control

    monkeypatch.setattr(xdl.train.control, "SETTLE_SECONDS", 0.0)


@pytest.fixture
def ctrl_c_in_a_last_epoch(monkeypatch):
    """From here on, the first `Trainer` epoch that is its run's last sends this process SIGINT once,
    after its steps and before its record (as a Ctrl-C pressed then)."""
    import os
    import signal

    from xdl.train import Trainer

    epoch, sent = Trainer._train_epoch, []

    def ctrl_c_in_the_last_epoch(self, *args):
        record = epoch(self, *args)
        if self.epoch == self.epochs and not sent:
            sent.append(os.kill(os.getpid(), signal.SIGINT))
        return record

    monkeypatch.setattr(Trainer, "_train_epoch", ctrl_c_in_the_last_epoch)


@pytest.fixture
def disk_full_from(monkeypatch):
    """``disk_full_from(n)``: from the n-th file write on (counted from this call), every write fails
    as on a full disk, in `atomic_write`'s fsync after the data went out; ``disk_full_from(None)``:
    the disk has room again."""
    import xdl.files

    fsync, state = xdl.files.os.fsync, {"calls": 0, "at": None}

    def failing_fsync(fd):
        state["calls"] += 1
        if state["at"] is not None and state["calls"] >= state["at"]:
            raise OSError(28, "No space left on device")
        return fsync(fd)

    def full_from(at):
        state.update(calls=0, at=at)

    monkeypatch.setattr(xdl.files.os, "fsync", failing_fsync)
    return full_from


@pytest.fixture(name="cupy")
def traced_cupy():
    """``cupy``: the CuPy stand-in (tests/fakecupy), the cupy backend in use and seeded, for tests that count
    what a step asks of a GPU through its trace (`cupy.fake_trace`); skipped on a real GPU (its CuPy counts
    nothing) and without one."""
    if not cupy_available():
        pytest.skip("needs CuPy and an NVIDIA GPU")
    import cupy

    if not hasattr(cupy, "fake_trace"):
        pytest.skip("counts what the CuPy stand-in (tests/fakecupy) sees")
    with xdl.use("cupy"):
        xdl.seed(0)
        yield cupy


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def edit_saved(path, change) -> None:
    """Rewrite the xdl file at ``path`` in place through ``change(header, arrays)``: its header, its
    ``extra`` in it as JSON (a format-2 file keeps it apart, `xdl.serialization.EXTRA_KEY`), and its
    other members — written back in the layout it came in (a damaged, edited or older file, by hand)."""
    from xdl.serialization import ARCHITECTURE_KEY, EXTRA_KEY

    with np.load(path) as data:
        arrays = dict(data)
    header = json.loads(str(arrays.pop(ARCHITECTURE_KEY)))
    apart = EXTRA_KEY in arrays
    if apart:
        header["extra"] = json.loads(arrays.pop(EXTRA_KEY).tobytes().decode("utf-8"))
    change(header, arrays)
    if apart:
        arrays[EXTRA_KEY] = np.frombuffer(json.dumps(header["extra"]).encode("utf-8"), dtype=np.uint8)
        header["extra"] = None
    np.savez(path, **arrays, **{ARCHITECTURE_KEY: np.array(json.dumps(header))})


def t64(backend, array, requires_grad=True):
    """A float64 tensor on ``backend`` from a NumPy array."""
    return xdl.Tensor(backend.asarray(np.asarray(array, dtype=np.float64)), requires_grad=requires_grad, backend=backend)


class OtherBackend(NumpyBackend):
    """A second backend with its own identity (NumPy underneath), for the mixed-backend errors."""

    name = "otherlib"


class CopyingHost(NumpyBackend):
    """A second host backend whose arrays are copies of its own: a stand-in for another device."""

    def __init__(self):
        super().__init__(0)
        self._made = {}  # id -> weak reference of each array made here
        self.xp = _MakingNumpy(self._register)  # its xp's new arrays are its own, as a device's xp makes them

    def asarray(self, data, dtype=None):
        return self._register(np.array(data, dtype=dtype, copy=True))

    def _register(self, array):
        self._made[id(array)] = weakref.ref(array)
        return array

    def owns(self, array) -> bool:
        while isinstance(array, np.ndarray) and array.base is not None:
            array = array.base
        made = self._made.get(id(array))
        return made is not None and made() is array


class _MakingNumpy:
    """NumPy whose functions that make an array anew (``zeros_like``, ``empty``, …) hand it to ``register``."""

    MAKERS = frozenset({"empty", "empty_like", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like"})

    def __init__(self, register):
        self._register = register

    def __getattr__(self, name):
        value = getattr(np, name)
        if name not in self.MAKERS:
            return value
        return lambda *args, **kwargs: self._register(value(*args, **kwargs))


@pytest.fixture
def peak_bytes():
    """``peak_bytes(f)``: the bytes of host memory ``f()`` took at its peak beyond what was held
    before (tracemalloc, which NumPy reports its arrays to)."""
    import tracemalloc

    def peak(f) -> int:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
            f()
            return tracemalloc.get_traced_memory()[1] - before
        finally:
            tracemalloc.stop()

    return peak


def memory_mapped(obj):
    """``obj`` as a joblib worker gets its large arguments (``Parallel``'s over ``max_nbytes``) and
    ``joblib.load(mmap_mode="r")`` loads it: a copy whose arrays are read-only memory maps."""
    import tempfile

    joblib = pytest.importorskip("joblib")
    with tempfile.TemporaryDirectory() as directory:
        joblib.dump(obj, f"{directory}/obj.joblib")
        return joblib.load(f"{directory}/obj.joblib", mmap_mode="r")


class StopAtEpoch(xdl.train.Callback):
    """Stops a run at the end of epoch ``epoch`` (a run cut there, to be resumed)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, record):
        trainer.stop_training = trainer.stop_training or record["epoch"] == self.epoch
