import os
import re
import subprocess
import sys

import numpy as np
import pytest

import xdl
from xdl.backend import BackendError, get_backend
from conftest import CopyingHost, OtherBackend, cupy_available


def run_python(code, **env):
    """Run ``code`` in a fresh interpreter (backend selection is per process)."""
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env)


def test_the_larger_submodules_load_on_first_use():
    """``import xdl`` then ``xdl.tune.tune(...)``, as the README writes it (it was an AttributeError),
    without importing them, or what they need, before."""
    out = run_python("import sys, xdl; print('xdl.tune' in sys.modules, 'optuna' in sys.modules); "
                     "print(xdl.tune.tune.__module__, xdl.sklearn.MLPClassifier.__name__)")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "xdl.tune.search", "MLPClassifier"]


def test_import_does_not_import_cupy():
    out = run_python("import sys, xdl; print('cupy' in sys.modules)", XDL_BACKEND="auto")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(cupy_available(), reason="a GPU is present: auto picks cupy")
def test_auto_falls_back_to_numpy_without_gpu():
    out = run_python("import xdl; print(xdl.current_backend().name)", XDL_BACKEND="auto")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "numpy"


@pytest.mark.skipif(cupy_available(), reason="a GPU is present: cupy works")
def test_explicit_cupy_without_gpu_is_one_line_error():
    out = run_python(
        "import xdl\ntry:\n    xdl.tensor([1.0])\nexcept xdl.BackendError as e:\n    print(e)\n", XDL_BACKEND="cupy"
    )
    assert out.returncode == 0, out.stderr
    message = out.stdout.strip()
    assert "\n" not in message
    assert message.startswith("backend 'cupy' is unavailable: ")
    assert len(message) > len("backend 'cupy' is unavailable: ")
    with pytest.raises(BackendError, match="cupy"):
        xdl.use("cupy")


def test_unknown_backend_names_the_choices():
    with pytest.raises(ValueError, match=r"unknown backend 'tensorflow'.*numpy, cupy, auto"):
        xdl.use("tensorflow")
    out = run_python("import xdl; xdl.tensor([1.0])", XDL_BACKEND="jax")
    assert out.returncode != 0
    assert "XDL_BACKEND='jax'" in out.stderr


def test_every_backend_argument_takes_what_model_to_takes():
    """A name, a device kind ("cpu") or a Backend, wherever a backend is asked for; anything else a
    TypeError naming the function (a string reached `.owns` deep inside, or broke the tensor later)."""
    numpy_backend = get_backend("numpy")
    with xdl.use("cpu") as by_kind, xdl.use(numpy_backend) as given:
        assert by_kind is given is numpy_backend is xdl.current_backend()
    for backend in ("numpy", "cpu", numpy_backend):
        assert xdl.tensor([1.0], backend=backend).backend is numpy_backend
        assert xdl.Tensor(np.ones(2), backend=backend).backend is numpy_backend
    assert xdl.nn.stack([xdl.nn.mlp(2, [3], 2)], backend="cpu").backend is numpy_backend
    for make, name in ((lambda b: xdl.tensor([1.0], backend=b), "tensor"), (lambda b: xdl.Tensor(np.ones(2), backend=b),
                       "Tensor"), (xdl.use, "use"), (lambda b: xdl.nn.stack([xdl.nn.mlp(2, [3], 2)], backend=b), "stack")):
        with pytest.raises(ValueError, match=rf"^{name}: unknown backend 'gpu'; expected one of numpy, cupy, auto or a "
                                             r"device kind \(cpu, cuda\)$"):
            make("gpu")
        with pytest.raises(TypeError, match=rf"^{name}: backend must be a backend name .* got 0$"):
            make(0)
    with pytest.raises(TypeError, match=r"^use: backend must be a backend name .* got None$"):
        xdl.use(None)  # (elsewhere None is the default)


def test_use_as_context_manager_restores_previous():
    with xdl.use("numpy"):
        before = xdl.current_backend()
        with xdl.use("numpy") as inner:
            assert xdl.current_backend() is inner
        assert xdl.current_backend() is before
    assert xdl.current_backend().name in ("numpy", "cupy")


def test_precision_is_checked_set_and_restored():
    with pytest.raises(ValueError, match=r"precision must be one of float32, tf32, got 'bf16'"):
        xdl.use("numpy", precision="bf16")
    numpy_backend = get_backend("numpy")
    assert numpy_backend.precision == "float32"
    with xdl.use("numpy", precision="tf32") as b:
        assert b.precision == "tf32"
        a = np.random.default_rng(0).standard_normal((9, 9)).astype(np.float32)
        np.testing.assert_array_equal(b.ops.matmul(a, a), a @ a)  # the CPU has no TF32: still exact
    assert numpy_backend.precision == "float32"
    with pytest.raises(ValueError, match=r"precision must be one of float32, tf32, got 'TF32'"):
        numpy_backend.precision = "TF32"  # set directly: checked too
    assert numpy_backend.precision == "float32"


def test_current_backend_exposes_name_and_xp(backend):
    current = xdl.current_backend()
    assert current is backend
    assert current.xp.__name__ == backend.name
    assert backend.owns(xdl.tensor([1.0]).data)


def test_seed_makes_runs_repeatable(backend):
    xdl.seed(7)
    a = backend.to_numpy(backend.rng.random(5))
    h = xdl.backend.host_rng().standard_normal(3)
    xdl.seed(7)
    assert np.array_equal(a, backend.to_numpy(backend.rng.random(5)))
    assert np.array_equal(h, xdl.backend.host_rng().standard_normal(3))


def test_a_seeded_generator_is_made_when_first_drawn_from(backend):
    """Seeding costs nothing until a draw (on a GPU making one sets up states on the device)."""
    xdl.seed(7)
    assert backend._rng is None
    first = backend.to_numpy(backend.rng.random(3))
    assert np.array_equal(first, backend.to_numpy(backend.xp.random.default_rng(7).random(3)))


def test_thread_seed_keys_this_threads_host_draws_only():
    import threading
    xdl.seed(3)
    process = xdl.backend.host_rng()
    with xdl.backend.thread_seed(7):
        inside = xdl.backend.host_rng().standard_normal(3)
        other = []
        worker = threading.Thread(target=lambda: other.append(xdl.backend.host_rng()))
        worker.start()
        worker.join()
        assert other == [process]  # another thread keeps the process's generator
    assert np.array_equal(inside, np.random.default_rng(7).standard_normal(3))
    assert xdl.backend.host_rng() is process
    assert np.array_equal(process.standard_normal(3), np.random.default_rng(3).standard_normal(3))  # not drawn from
    for bad in (-1, 1.5, True, "7", 2**64):  # (2**64 would key dropout masks as 0 does)
        with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*64\) or None, got"):
            with xdl.backend.thread_seed(bad):
                pass
    assert xdl.backend.host_rng() is process


def test_a_build_or_a_nested_thread_seed_leaves_the_blocks_generator_the_threads():
    """`build` draws from a copy in a block of its own (`thread_generator`), as a nested `thread_seed`: on
    leaving, the enclosing block's generator is this thread's again — not the process's."""
    xdl.seed(3)
    model = xdl.nn.mlp(2, [3], 2)
    with xdl.backend.thread_seed(7):
        xdl.nn.architecture.build(xdl.nn.describe(model))
        with xdl.backend.thread_seed(8):
            pass
        after = xdl.backend.host_rng().standard_normal(3)
    assert np.array_equal(after, np.random.default_rng(7).standard_normal(3))


def test_to_numpy_of_tensor_and_array(backend):
    t = xdl.tensor([[1.0, 2.0]])
    assert isinstance(xdl.to_numpy(t), np.ndarray)
    assert xdl.to_numpy(t).tolist() == [[1.0, 2.0]]
    assert xdl.to_numpy(t.data).dtype == np.float32


def test_dlpack_round_trip_shares_memory(backend):
    t = xdl.tensor([1.0, 2.0, 3.0])
    back = xdl.from_dlpack(t)
    assert back.backend.name == backend.name
    back.data[0] = 10.0
    assert t.numpy()[0] == 10.0  # same memory, no copy
    if backend.name == "numpy":
        arr = np.arange(4.0)
        shared = xdl.from_dlpack(arr)
        assert np.shares_memory(shared.data, arr)
        assert np.shares_memory(np.from_dlpack(shared), arr)


def test_dlpack_with_torch_when_installed(backend):
    torch = pytest.importorskip("torch")
    device = "cuda" if backend.name == "cupy" else "cpu"
    if device == "cuda" and not torch.cuda.is_available():  # a CPU wheel beside CuPy: no CUDA tensor to share
        pytest.skip("PyTorch is installed without CUDA")
    tt = torch.arange(5, dtype=torch.float32, device=device)
    t = xdl.from_dlpack(tt)
    assert t.backend.name == backend.name
    tt[0] = 42.0
    assert t.numpy()[0] == 42.0
    back = torch.from_dlpack(t)
    assert back.data_ptr() == tt.data_ptr()


def test_mixing_backends_names_both(backend):
    other = OtherBackend()
    a = xdl.tensor([1.0, 2.0])
    b = xdl.Tensor(np.array([1.0, 2.0], dtype=np.float32), backend=other)
    with pytest.raises(TypeError, match=rf"Add: cannot mix tensors of different backends \({backend.name} and otherlib\)"):
        a + b


def test_a_parameter_of_another_backend_assigned_to_a_model_is_refused_naming_both(backend):
    """One flat buffer holds a model's parameters: one of another backend (``xdl.Parameter(np.zeros(...))``
    on a GPU, a NumPy parameter) failed inside the packing with CuPy's "Implicit conversion to a NumPy
    array is not allowed", registered all the same (on the CPU it was taken, its model's forward refused)."""
    model = xdl.nn.mlp(3, [4], 2)
    aux = xdl.Parameter(xdl.Tensor(np.zeros((4, 1), dtype=np.float32), backend=OtherBackend()))
    with pytest.raises(TypeError, match=rf"Sequential.aux: parameters of different backends \({backend.name} and "
                                        r"otherlib\) cannot share a model's flat buffer"):
        model.aux = aux
    assert not hasattr(model, "aux") and len(model.parameters()) == 4
    with pytest.raises(TypeError, match=r"parameters of different backends .* or move a layer there first: "
                                        r"layer.to\(model.backend\)$"):
        xdl.nn.Sequential(xdl.nn.mlp(3, [4], 2), xdl.nn.mlp(2, [4], 2).to(OtherBackend()))
    model.aux = xdl.Parameter(xdl.tensor(np.zeros((4, 1), dtype=np.float32), backend=model.backend))  # the way out
    assert model.aux.backend is backend


@pytest.mark.gpu
def test_mixing_numpy_and_cupy_tensors():
    if not cupy_available():
        pytest.skip("needs a GPU")
    with xdl.use("numpy"):
        a = xdl.tensor([1.0])
    with xdl.use("cupy"):
        b = xdl.tensor([1.0])
    with pytest.raises(TypeError, match=r"numpy and cupy"):
        a * b
    assert get_backend("cupy").device_name().startswith("cuda:")


def test_threads_whose_first_use_of_xdl_comes_at_once_share_one_backend():
    """Each backend is made once in a process: threads of a server loading their models at its
    start each made their own NumpyBackend while another's was being made (here made slowly, as
    CuPy's import and device query are), and one's model refused the other's tensors as "different
    backends (numpy and numpy)"; `xdl.seed` reseeded only the last one made."""
    out = run_python(
        "import threading, time, numpy as np, xdl\n"
        "from xdl.backend import NumpyBackend\n"
        "made = NumpyBackend.create.__func__\n"
        "NumpyBackend.create = classmethod(lambda cls, seed=None: (time.sleep(0.05), made(cls, seed))[1])\n"
        "models = []\n"
        "threads = [threading.Thread(target=lambda: models.append(xdl.nn.Dense(3, 2))) for _ in range(4)]\n"
        "[t.start() for t in threads]; [t.join() for t in threads]\n"
        "x = xdl.tensor(np.ones((1, 3), dtype=np.float32))\n"
        "print(len({id(m.backend) for m in models}), all(m(x).shape == (1, 2) for m in models))\n",
        XDL_BACKEND="numpy")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "True"]


def test_a_seed_while_another_thread_makes_the_backend_seeds_that_backend():
    """`xdl.seed(n)` while another thread was making its first backend (slowly here, as CuPy's import
    and device query are): the backend was made with the seed before and added after the seed's loop
    over the backends, so its generator (noise, a loop's own dropout) was not seeded with ``n``. The
    seed now waits for the backend being made (the wait below ends at 0.5 s then)."""
    out = run_python(
        "import threading, numpy as np, xdl\n"
        "from xdl.backend import NumpyBackend\n"
        "made, making, seeded = NumpyBackend.create.__func__, threading.Event(), threading.Event()\n"
        "NumpyBackend.create = classmethod(lambda cls, seed=None:\n"
        "                                  (making.set(), seeded.wait(0.5), made(cls, seed))[2])\n"
        "worker = threading.Thread(target=lambda: xdl.backend.get_backend('numpy'))\n"
        "worker.start(); making.wait(10)\n"
        "xdl.seed(5); seeded.set(); worker.join()\n"
        "drawn = xdl.backend.get_backend('numpy').rng.random(3)\n"
        "print(bool(np.array_equal(drawn, np.random.default_rng(5).random(3))))\n",
        XDL_BACKEND="numpy")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True"]


def test_thread_backend_holds_in_this_thread_only_and_is_restored():
    """How xdl's own code builds on the host without switching the process's backend (`use`),
    which other threads may be using."""
    import threading

    from xdl.backend import current_backend, thread_backend

    before, other, seen = current_backend(), CopyingHost(), {}
    with thread_backend(other):
        assert current_backend() is other
        worker = threading.Thread(target=lambda: seen.update(backend=current_backend()))
        worker.start()
        worker.join()
    assert seen["backend"] is before and current_backend() is before


def test_xdl_backend_and_thread_backend_take_device_kinds_and_names_as_use_does():
    out = run_python("import xdl; print(xdl.current_backend().name)", XDL_BACKEND="cpu")
    assert out.returncode == 0 and out.stdout.strip() == "numpy"
    from xdl.backend import thread_backend

    with thread_backend("numpy"):
        assert xdl.tensor([1.0]).backend.name == "numpy"
    with pytest.raises(ValueError, match="thread_backend: unknown backend 'jax'"):
        with thread_backend("jax"):
            pass


def test_a_copy_of_a_model_or_tensor_stays_on_its_backend_one_made_by_hand_too():
    """``copy.deepcopy`` of a model on a backend made by hand (``NumpyBackend(seed)``, as `model.to`
    takes one) went through the backend's pickle-by-name and landed on the process's backend, and
    the copy's output beside the original's was refused as "different backends (numpy and numpy)".
    A backend copies as itself, as a device does; a pickle still names it."""
    import copy
    import pickle

    own = xdl.NumpyBackend(0)
    assert copy.copy(own) is own and copy.deepcopy(own) is own
    model = xdl.nn.mlp(2, [3], 2).to(own)
    twin = copy.deepcopy(model)
    assert all(p.backend is own for p in twin.parameters())
    x = np.ones((4, 2), np.float32)
    np.testing.assert_array_equal((model(x) - twin(x)).numpy(), 0)
    t = xdl.tensor([1.0, 2.0], backend=own)
    assert (t + copy.deepcopy(t)).backend is own
    assert pickle.loads(pickle.dumps(own)) is get_backend("numpy")


@pytest.mark.gpu
def test_a_parameter_takes_data_and_grad_of_its_backend_only_refused_at_the_assignment():
    """``p.data = numpy_array`` on a model on cupy (and a CuPy one on numpy) was taken, and the next forward
    failed inside the cuBLAS binding ("'memoryview' object has no attribute 'ptr'"), or NumPy's ("Unsupported
    type"), naming neither the parameter nor the way; ``.grad`` likewise. Refused where it is assigned, naming
    the parameter, its backend and the way, before anything changes; its own backend's arrays and Tensors are
    taken as before (written back at the optimizer's next step)."""
    if not cupy_available():
        pytest.skip("needs a GPU")
    for here, other in (("cupy", "numpy"), ("numpy", "cupy")):
        with xdl.use(here):
            model = xdl.nn.mlp(4, [8], 3)
        foreign = get_backend(other)
        for p in model.parameters():
            for attribute in ("data", "grad"):
                before = getattr(p, attribute)
                for value in (foreign.xp.zeros(p.shape, dtype=p.dtype), xdl.tensor(np.zeros(p.shape), backend=other)):
                    with pytest.raises(TypeError, match=rf"^{attribute}: parameter '{p.name}' on the {here} backend "
                                                        r"takes an array of it, got .*p\[\.\.\.\] = values.*model\.to"):
                        setattr(p, attribute, value)
                    assert getattr(p, attribute) is before
        optimizer = xdl.optim.SGD(model, lr=1.0)
        w = model.parameters()[0]
        w.data = model.backend.xp.ones(w.shape, dtype=w.dtype)  # its own backend's: taken
        w.grad = xdl.tensor(np.full(w.shape, 0.5, dtype=w.dtype), backend=here)
        optimizer.step()
        np.testing.assert_array_equal(w.numpy(), np.full(w.shape, 0.5, dtype=w.dtype))
        with xdl.no_grad():  # the way the message names: the values copied over from any backend
            w[...] = foreign.xp.full(w.shape, 2.0, dtype=w.dtype)
        np.testing.assert_array_equal(model.to(other).parameters()[0].numpy(), np.full(w.shape, 2.0))
        assert model.parameters()[0].backend is foreign  # (moved: the parameters rebound with their backend first)


def test_a_steady_step_runs_no_parameter_setattr(monkeypatch):
    """`Parameter.__setattr__` (the backend check of ``p.data =`` and ``p.grad =``) is a Python call per attribute
    set: a step's write stamps (`note_written`, once per parameter per step, and per replay of a captured step)
    went through it, 2.5x the stamp's own host time. A steady step — forward, backward, update — sets no
    attribute of a parameter through it; the stamps still count (a backward after the update is refused)."""
    from xdl.tensor import Parameter

    model = xdl.nn.mlp(4, [8], 3, batch_norm=True)
    optimizer = xdl.optim.Adam(model, lr=1e-3)
    x, y = np.ones((5, 4), np.float32), np.array([0, 1, 2, 0, 1])

    def step():
        optimizer.zero_grad()
        cost = xdl.losses.SoftmaxCrossEntropy()(model(x), y)
        cost.backward()
        optimizer.step()

    step()
    sets = []
    checking = Parameter.__setattr__
    monkeypatch.setattr(Parameter, "__setattr__", lambda p, name, value: (sets.append(name), checking(p, name, value)))
    for _ in range(3):
        step()
    assert sets == []
    w = model.parameters()[0]
    stamp = w._written
    cost = (model(x) ** 2).sum()
    optimizer.step()  # (a step's update: the weights written after the forward)
    assert w._written > stamp
    with pytest.raises(RuntimeError):
        cost.backward()


@pytest.mark.gpu
def test_a_cupy_array_is_read_as_cupy_s_before_the_cupy_backend_was_first_used(monkeypatch):
    """A model on numpy (``XDL_BACKEND=numpy``) given CuPy data before anything had used the cupy backend: the
    array was no loaded backend's, so `xdl.tensor`, a model's call, fit, predict, `split` and `Standardizer`
    refused it as "does not convert to a NumPy array (Implicit conversion … not allowed)", where the same calls
    after any use of cupy copied it over. Its DLPack device names its backend."""
    if not cupy_available():
        pytest.skip("needs a GPU")
    from xdl.data import Standardizer, split
    from xdl.train import Trainer

    cupy = get_backend("cupy").xp
    X = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
    y = np.arange(30) % 3
    monkeypatch.setattr(xdl.backend, "_backends", {"numpy": get_backend("numpy")})  # as in a process on numpy
    with xdl.use("numpy"):
        model = xdl.nn.mlp(4, [8], 3)
        np.testing.assert_array_equal(xdl.tensor(cupy.asarray(X)).numpy(), X)
        assert xdl.backend.owner(cupy.asarray(X)).name == "cupy"
        np.testing.assert_array_equal(model(cupy.asarray(X)).numpy(), model(X).numpy())
        trainer = Trainer(model, xdl.losses.SoftmaxCrossEntropy(), xdl.optim.Adam(model), epochs=1, progress=False)
        trainer.fit(cupy.asarray(X), cupy.asarray(y))
        np.testing.assert_array_equal(model.predict(cupy.asarray(X)), model.predict(X))
        assert split(cupy.asarray(X), y, seed=0).X_train.get().tolist() == split(X, y, seed=0).X_train.tolist()
        np.testing.assert_array_equal(Standardizer().fit(cupy.asarray(X)).transform(cupy.asarray(X)).get(),
                                      Standardizer().fit(X).transform(X))


def test_owner_says_another_librarys_device_array_is_no_backends_without_making_the_cupy_backend(monkeypatch):
    """A torch (or JAX) CUDA tensor has CuPy's DLPack device, but is no CuPy array: `owner` made the cupy
    backend to ask it — imported cupy and set up its device (or, on a machine without one, tried to) — and only
    then said no. Asked of every form of such an array, and through the helpers that ask `owner`, it answers
    as before and makes nothing."""
    made = []

    def create(cls, seed=None):
        made.append(cls.name)
        raise BackendError("made")

    monkeypatch.setattr(xdl.backend, "_backends", {"numpy": get_backend("numpy")})  # a process that has not used cupy
    monkeypatch.setattr(xdl.backend.CupyBackend, "create", classmethod(create))
    interface = {"shape": (3,), "typestr": "<f4", "data": (0, False), "version": 3}

    def library_array(device, cuda_interface, callable_device=True):
        attributes = {"__dlpack__": lambda self, **kwargs: None}
        if device is not None:
            attributes["__dlpack_device__"] = (lambda self: device) if callable_device else device
        if cuda_interface:
            attributes["__cuda_array_interface__"] = interface
        return type("Tensor", (), attributes)()

    cases = [library_array(device, cuda, call) for device in ((2, 0), (13, 1), (2, 3), (1, 0), None)
             for cuda in (True, False) for call in (True, False)]
    for array in cases:
        assert xdl.backend.owner(array) is None
        assert not xdl.backend.on_device(array)
        assert xdl.backend.on_backend_of(np.ones(2), array).tolist() == [1.0, 1.0]
    assert made == [] and "cupy" not in xdl.backend._backends


def test_use_as_context_manager_restores_another_backend_and_its_precision():
    """On exit the backend current before is current again, and the precision of the one used is what it
    was: with one backend in play (numpy within numpy) a `use` that restored nothing passed."""
    from xdl.backend import current_backend

    before, other = current_backend(), OtherBackend()
    with xdl.use(other, precision="tf32") as used:
        assert used is other and current_backend() is other and other.precision == "tf32"
        with xdl.use(before):
            assert current_backend() is before
        assert current_backend() is other
    assert current_backend() is before and other.precision == "float32"


@pytest.mark.parametrize("value, expected", [
    ("numpy", "numpy"), (" NumPy ", "numpy"), ("CUPY", "cupy"), ("Auto", "auto"), ("cpu", "numpy"), ("CUDA", "cupy"),
    ("", None), ("  ", None), (None, None)])
def test_xdl_backend_is_read_whatever_its_case_and_spaces(monkeypatch, value, expected):
    """``XDL_BACKEND`` as `use` takes a name, in any case and with spaces around it (a shell's "NumPy"),
    device kinds as their backends; unset or blank: none."""
    from xdl.backend import environment_backend

    if value is None:
        monkeypatch.delenv("XDL_BACKEND", raising=False)
    else:
        monkeypatch.setenv("XDL_BACKEND", value)
    assert environment_backend() == expected
    monkeypatch.setenv("XDL_BACKEND", f"{value or ''}x")
    with pytest.raises(ValueError, match=r"^XDL_BACKEND='.*x' is not a backend; expected one of numpy, cupy, auto"):
        environment_backend()


def _fake_cupy(count):
    """A module that imports as cupy, whose runtime answers ``count`` devices (an exception: raises it)."""
    import types

    def device_count():
        if isinstance(count, Exception):
            raise count
        return count

    runtime = types.SimpleNamespace(getDeviceCount=device_count)
    return types.SimpleNamespace(__name__="cupy", cuda=types.SimpleNamespace(runtime=runtime))


def test_cupy_counts_as_usable_only_with_a_device_that_answers(monkeypatch):
    """`_cupy_or_reason`: cupy that imports and counts at least one device is usable; none counted, or a
    runtime that raises, is a one-line reason — and "auto" picks cupy exactly when it is usable."""
    from xdl import backend as backend_module

    cases = [(1, None), (4, None), (0, "no CUDA device found (getDeviceCount() == 0)"),
             (RuntimeError("driver too old"), "no CUDA device answers (RuntimeError: driver too old)")]
    for count, reason in cases:
        fake = _fake_cupy(count)
        monkeypatch.setitem(sys.modules, "cupy", fake)
        monkeypatch.setattr(backend_module, "_backends", {"numpy": get_backend("numpy")})
        assert backend_module._cupy_or_reason() == ((fake, None) if reason is None else (None, reason))
        auto = get_backend("auto")
        assert auto.name == ("cupy" if reason is None else "numpy")
        assert reason is not None or auto.xp is fake
        if reason is None:  # the device kind "cuda" is the cupy backend, as "cpu" is numpy's
            assert backend_module.resolve_backend("cuda", "use") is get_backend("cupy")
        else:
            with pytest.raises(BackendError, match=rf"^backend 'cupy' is unavailable: {re.escape(reason)}$"):
                backend_module.resolve_backend("cuda", "use")
    from xdl.backend import check_seed

    check_seed(2**64 - 1)  # (a dropout mask's key holds 64 bits of seed)
    with pytest.raises(ValueError, match=rf"^seed must be an integer in \[0, 2\*\*64\) or None, got {2**64}$"):
        check_seed(2**64)


def test_a_use_restores_the_precision_its_backend_had_and_nested_thread_backends_their_outer_one():
    """A `use` that sets a precision puts back the one the backend had before (tf32 stays tf32 after an
    inner float32 block); a `thread_backend` within another gives the outer one back, not the process's."""
    from xdl.backend import current_backend, thread_backend

    other = OtherBackend()
    with xdl.use(other, precision="tf32"):
        with xdl.use(other, precision="float32"):
            assert other.precision == "float32"
        assert other.precision == "tf32"
        with xdl.use(other):  # (no precision: left as it is)
            assert other.precision == "tf32"
    assert other.precision == "float32"
    process, outer, inner = current_backend(), OtherBackend(), CopyingHost()
    with thread_backend(outer):
        with thread_backend(inner):
            assert current_backend() is inner
        assert current_backend() is outer
    assert current_backend() is process


def test_a_sparse_matrix_is_told_by_toarray_and_nnz_together():
    """`is_sparse_matrix` goes by scipy.sparse's duck type, both attributes: an object with a ``toarray``
    alone (another library's array) is no sparse matrix."""
    import types

    from xdl.backend import is_sparse_matrix

    assert is_sparse_matrix(types.SimpleNamespace(toarray=lambda: None, nnz=0))
    assert not is_sparse_matrix(types.SimpleNamespace(toarray=lambda: None))
    assert not is_sparse_matrix(types.SimpleNamespace(nnz=0))
    assert not is_sparse_matrix(np.zeros((2, 2)))
    scipy_sparse = pytest.importorskip("scipy.sparse")
    assert is_sparse_matrix(scipy_sparse.csr_matrix(np.eye(2)))
