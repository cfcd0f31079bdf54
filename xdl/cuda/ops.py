"""`CupyOps`: the fused ops of `xdl.ops.NumpyOps` as CUDA kernels (``kernels/*.cu``).

Each method has the reference's signature; it launches the kernels of `xdl.cuda.kernels` by
parameter name and falls back to the reference (running on CuPy) for dtypes or layouts the
kernels do not take. Only launch geometry is decided here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from xdl.caller import warn_caller
from xdl.cuda.cublas import Cublas
from xdl.cuda.kernels import kernel
from xdl.cuda.source import DTYPES, SOURCES
from xdl.ops import NumpyOps, batchnorm, penalty
from xdl.ops.random import LANE_BITS

THREADS = 256  # threads per block of the optimizer updates (grid-stride loops: any value works)
BN = SOURCES["batchnorm.cu"].defines
BLOCK_X, BLOCK_Y, ROW_GROUP = BN["BLOCK_X"], BN["BLOCK_Y"], BN["ROW_GROUP"]  # what batchnorm.cu is compiled for
LOSS_THREADS = SOURCES["activation.cu"].defines["LOSS_THREADS"]  # the losses' forwards' block (their means' lanes)
BN_OUT_DGAMMA, BN_OUT_DBETA = BN["OUT_DGAMMA"], BN["OUT_DBETA"]  # bn_backward_reduce's `outputs` bits
SMALL_ROWS = 2048  # up to this batch size the training forward may be one launch (bn_forward_small) …
SHORT_ROWS = 256  # … and up to this one it is: a thread's two passes over its column stay short
ELEMENTWISE_ROWS = 32  # rows per block of the batch-norm elementwise passes: many short blocks, no long tail
MAX_GRID_Y = 65535
PENALTY_THREADS = SOURCES["penalty.cu"].defines["THREADS"]  # what penalty.cu is compiled for
MAX_CLASSES = 1024  # the softmax cross-entropy kernel's widest row (a thread loops over a row three times)
FLOAT_TYPES = (DTYPES["float"], DTYPES["double"])  # the T the kernels are instantiated for


@dataclass(frozen=True)
class Recomputed:
    """What a dropout forward run in its kernel keeps for the backward: not the mask (the backward
    draws it again from the key) but its dtype, the forward's — the reference keeps mask·1/(1 − rate)
    in that dtype, so a gradient of another dtype is multiplied by values rounded to it."""

    dtype: np.dtype


class CupyOps(NumpyOps):
    """CUDA kernels for float32/float64; anything else falls back to the reference (on CuPy)."""

    def __init__(self, backend):
        super().__init__(backend)
        self.address = backend.address
        self.sm_count = backend.xp.cuda.Device().attributes["MultiProcessorCount"]
        self._grids = {}  # (kernel, rows, cols, vec) -> batch-norm launch geometry
        self._counters = {}  # stream pointer -> zeroed int32 counters of bn_stats, bn_backward_reduce, the losses
        self._workspaces = {}  # (stream pointer, dtype) -> scratch of the batch-norm reductions (_stream_workspace)
        self._uploaded = {}  # per-model hyperparameters on the device, by content (_on_device)
        self._handles = {}  # (device, stream pointer) -> Cublas
        self._no_steps_done = self._lasting("zero step counter", lambda: self.xp.zeros(1, dtype=self.xp.int64))
        # what a batch-norm forward with one momentum passes as the kernels' momenta (a double array they do not read)
        self._no_momenta = self._lasting("unread momenta", lambda: self.xp.zeros(1, dtype=np.float64))
        self._model_keys = {}  # (rates, seeds) -> stacked dropout's per-model arrays on the device
        self._ones_vectors = {}  # (length, dtype) -> ones: `sum_rows`' operand
        self._cublas_error = None  # why cuBLAS could not be loaded, once

    # -- caches: made once, outside any graph ------------------------------------------------
    def _lasting(self, what: str, make):
        """``make()`` for a cache kept across steps: refused while a graph is captured (it would
        copy from the host or allocate in the graph; the warm-up call makes it first), and
        allocated outside a graph's private pool, which goes with the graph."""
        self.backend.refuse_if_capturing(f"the first use of a {what} (a warm-up call, warmup ≥ 1, makes it)")
        with self.backend.lasting_memory():
            return make()

    def cached_arrays(self) -> list:
        """The uploaded values a captured step may read (a graph keeps them alive: the caches
        are cleared when they grow)."""
        return [*self._uploaded.values(), *(a for keys in self._model_keys.values() for a in keys.values()),
                *self._ones_vectors.values(),
                *self._counters.values(),  # replaced by larger ones when a wider layer needs more
                *self._workspaces.values()]

    # -- matrix products: xdl's own cuBLAS handle per stream (capturable, β = 1 accumulation) --
    def matmul(self, a, b, out=None, accumulate=False):
        # matrices, or stacks of them (one strided-batched GEMM: K stacked models' dense layers)
        if a.ndim in (2, 3) and b.ndim in (2, 3) and a.dtype == b.dtype and a.dtype in FLOAT_TYPES:
            handle = self._cublas()
            if handle is not None:
                stack = () if a.ndim == b.ndim == 2 else np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
                target = out if out is not None else self.xp.empty((*stack, a.shape[-2], b.shape[-1]), dtype=a.dtype)
                if handle.gemm(a, b, target, accumulate):
                    return target
        return super().matmul(a, b, out, accumulate)

    def sum_rows(self, x, out, accumulate=False):
        # a product with a row of ones: with β = 1 cuBLAS adds the sum into ``out`` itself, one launch and no
        # temporary (a reduction then an add are two launches and an allocation); in exact float32 products
        # only, as TF32 would round x's values, not just the order they are summed in
        if x.ndim in (2, 3) and x.dtype in FLOAT_TYPES and out.dtype == x.dtype and self.backend.precision == "float32":
            handle = self._cublas()
            if handle is not None and handle.gemm(self._ones(x.shape[-2], x.dtype)[None, :], x, out[..., None, :],
                                                  accumulate):
                return out
        return super().sum_rows(x, out, accumulate)

    def _ones(self, n: int, dtype):
        """A vector of n ones, made once per length and dtype (a batch size's warm-up makes it)."""
        key = (n, np.dtype(dtype).str)
        ones = self._ones_vectors.get(key)
        if ones is None:
            if len(self._ones_vectors) >= 64:
                self._ones_vectors.clear()  # a graph keeps what it read (cached_arrays)
            ones = self._ones_vectors[key] = self._lasting("vector of ones", lambda: self.xp.ones(n, dtype=dtype))
        return ones

    def _cublas(self):
        """The handle of the current stream, at the backend's precision (None where cuBLAS cannot
        be loaded through ctypes: CuPy's matmul serves then)."""
        stream = self.xp.cuda.get_current_stream().ptr
        key = (self.xp.cuda.Device().id, stream)
        handle = self._handles.get(key)
        if handle is None and self._cublas_error is None:
            handle = self._handles[key] = self._lasting("cuBLAS handle on this stream", lambda: self._new_handle(stream))
        if handle is not None and handle.precision != self.backend.precision:
            handle.set_precision(self.backend.precision)
        return handle

    def _new_handle(self, stream):
        try:
            return Cublas(self.xp, stream, self.address)
        except (OSError, ImportError, AttributeError) as e:  # no libcublas to load (a CUDA error propagates)
            self._cublas_error = e
            warn_caller(f"xdl: cuBLAS could not be loaded through ctypes ({e}); matrix products run through "
                        "cupy.matmul, which cannot be captured in a CUDA graph", RuntimeWarning)
            return None

    def _aligned(self, *arrays) -> bool:
        return all(self.address(a) % 16 == 0 for a in arrays)

    # -- weight penalties: one kernel each way (kernels/penalty.cu) over a model's (n,) range or K stacked
    # models' (K, n) region; the plain sums and a gradient of a given coefficient (weights outside a range, one
    # by one) are the reference over the whole array at once (a few launches; chunks would be launches each)
    def penalty_sums(self, w, kind):
        return penalty.penalty_sums(self.xp, w, kind, chunk=None)

    def penalty_gradient(self, grad, w, coefficient, kind):
        penalty.penalty_gradient(self.xp, grad, w, coefficient, kind, chunk=None)

    def _penalty_layout(self, w, slope, *others):
        """(K, n, ld, per-model slopes or None) of ``w`` as the kernels take it — (n,) contiguous with a number
        ``slope``, or (K, n) rows of unit stride with a contiguous (K, 1) column of its dtype — and ``others``
        laid out alike; None for anything else (the reference runs)."""
        if w.dtype not in FLOAT_TYPES or w.size == 0 or any(a.dtype != w.dtype or a.shape != w.shape
                                                            or a.strides != w.strides for a in others):
            return None
        if not hasattr(slope, "shape"):
            return (1, w.size, w.size, None) if w.ndim == 1 and w.flags.c_contiguous else None
        if (w.ndim != 2 or w.strides[1] != w.itemsize or not 0 < w.shape[0] <= MAX_GRID_Y
                or not isinstance(slope, self.xp.ndarray) or slope.dtype != w.dtype
                or slope.shape != (w.shape[0], 1) or not slope.flags.c_contiguous):
            return None
        return w.shape[0], w.shape[1], w.strides[0] // w.itemsize, slope

    def _penalty_blocks(self, n: int, k: int) -> int:
        return max(1, min(-(-n // PENALTY_THREADS), -(-self.sm_count * 16 // k)))

    def penalty_forward(self, w, kind, slope):
        layout = self._penalty_layout(w, slope)
        if layout is None:
            return super().penalty_forward(w, kind, slope)
        penalty.check_penalty_kind(kind)
        k, n, ld, slopes = layout
        half = 0.5 if kind == "l2" else 1.0
        blocks = self._penalty_blocks(n, k)
        cost = self.xp.empty((), dtype=w.dtype)
        kernel("penalty.cu", "penalty_forward", w.dtype)(
            (blocks, k), (PENALTY_THREADS,), w=w, n=n, ld=ld, kind=penalty.KINDS.index(kind),
            scale=half if slopes is not None else float(slope) * half, slopes=cost if slopes is None else slopes,
            per_model=int(slopes is not None), partials=self._stream_workspace(blocks * k, np.float64),
            counter=self._stream_counters(1), cost=cost)  # (cost: unread)
        return cost

    def penalty_backward(self, grad, w, gy, slope, kind):
        layout = self._penalty_layout(w, slope, grad)
        if layout is None or not (isinstance(gy, self.xp.ndarray) and gy.dtype == w.dtype and gy.size == 1
                                  and gy.flags.c_contiguous):
            return super().penalty_backward(grad, w, gy, slope, kind)
        penalty.check_penalty_kind(kind)
        k, n, ld, slopes = layout
        kernel("penalty.cu", "penalty_backward", w.dtype)(
            (self._penalty_blocks(n, k), k), (PENALTY_THREADS,), grad=grad, w=w, n=n, ld=ld,
            kind=penalty.KINDS.index(kind), gy=gy, slope=0.0 if slopes is not None else float(slope),
            slopes=gy if slopes is None else slopes, per_model=int(slopes is not None))  # (gy as slopes: unread)
        return None

    # -- optimizer updates ----------------------------------------------------------------
    # One kernel per rule (kernels/optim.cu) for one model (a flat (n,) buffer: K = 1) and K stacked
    # models ((K, n) regions) alike. Hyperparameters are read from device memory: an optimizer's own
    # fixed buffers (`xdl.optim.Optimizer` writes a new rate there, so a captured step sees it), or
    # numbers and host arrays uploaded once per distinct content (`_on_device`).
    def _update(self, name, per_model: dict, scalars: dict, **arrays) -> bool:
        """One launch of update ``name`` (grid.y = model). False (nothing launched) for a layout or
        a hyperparameter the kernel does not take: the reference runs then."""
        p = arrays["p"]
        one_model = all(getattr(value, "size", 1) == 1 for value in per_model.values())
        if (p.ndim == 1 or one_model) and all(a.flags.c_contiguous for a in arrays.values()):
            arrays = {name_: a.reshape(1, -1) for name_, a in arrays.items()}  # any shape, one value each: K = 1
            p = arrays["p"]
        if p.ndim != 2 or any(a.dtype != p.dtype or a.shape != p.shape or a.strides != p.strides
                              for a in arrays.values()) \
                or p.dtype not in FLOAT_TYPES or p.strides[1] != p.itemsize or not 0 < p.shape[0] <= MAX_GRID_Y \
                or p.size == 0:
            return False
        k, n = p.shape
        ld = p.strides[0] // p.itemsize
        values = self._per_model_values(per_model, k)
        if values is None:
            return False
        vectorized = self._aligned(*arrays.values()) and (k == 1 or (ld * p.itemsize) % 16 == 0)
        work = n // (16 // p.itemsize) if vectorized else n
        blocks = max(1, min((work + THREADS - 1) // THREADS, -(-self.sm_count * 16 // k)))
        kernel("optim.cu", name, p.dtype)((blocks, k), (THREADS,), n=n, ld=ld, vectorized=int(vectorized),
                                          **arrays, **scalars, **values)
        return True

    def _per_model_values(self, per_model: dict, k: int):
        """Each hyperparameter as K doubles on the device: device arrays as they are (an optimizer's
        held values), the numbers and host arrays in one upload (`_on_device`); None if a device
        array is not K contiguous doubles."""
        device, host = {}, {}
        for h, value in per_model.items():
            if isinstance(value, self.xp.ndarray):
                if value.dtype != np.float64 or value.size != k or not value.flags.c_contiguous:
                    return None
                device[h] = value
            else:
                host[h] = value
        if host:
            self.backend.refuse_if_capturing(  # a graph would replay this step's values forever
                f"an update given {', '.join(host)} as host numbers: a captured step reads its hyperparameters "
                "from device arrays (an Optimizer's held values)")
            block = np.empty((len(host), k), dtype=np.float64)
            for i, value in enumerate(host.values()):
                block[i] = value
            uploaded = self._on_device(block)
            device.update({h: uploaded[i] for i, h in enumerate(host)})
        return device

    def _on_device(self, values: np.ndarray):
        """``values`` as a device array, uploaded once per distinct content (a host→device copy from
        pageable memory waits for the stream: once per epoch's new rates, not once per step)."""
        key = (values.dtype.str, values.shape, values.tobytes())
        device = self._uploaded.get(key)
        if device is None:
            if len(self._uploaded) >= 64:
                self._uploaded.clear()  # a graph keeps what it read (cached_arrays)
            device = self._uploaded[key] = self._lasting("hyperparameter value", lambda: self.xp.asarray(values))
        return device

    def _steps_done(self, steps_done):
        """The step counter a kernel reads (a zero one when none is given), or None if it is not one
        int64 in device memory."""
        if steps_done is None:
            return self._no_steps_done
        if isinstance(steps_done, self.xp.ndarray) and steps_done.dtype == np.int64 and steps_done.size == 1:
            return steps_done
        return None

    def sgd_update(self, p, g, lr, weight_decay=0.0):
        if not self._update("sgd_update", dict(lr=lr, weight_decay=weight_decay), {}, p=p, g=g):
            super().sgd_update(p, g, lr, weight_decay)

    def momentum_update(self, p, g, v, lr, beta, nesterov=False, weight_decay=0.0):
        if not self._update("momentum_update", dict(lr=lr, beta=beta, weight_decay=weight_decay),
                            dict(nesterov=int(bool(nesterov))), p=p, g=g, v=v):
            super().momentum_update(p, g, v, lr, beta, nesterov, weight_decay)

    def rmsprop_update(self, p, g, sq, lr, beta, eps, weight_decay=0.0):
        if not self._update("rmsprop_update", dict(lr=lr, beta=beta, eps=eps, weight_decay=weight_decay), {},
                            p=p, g=g, s=sq):
            super().rmsprop_update(p, g, sq, lr, beta, eps, weight_decay)

    def adam_update(self, p, g, m, v, lr, beta1, beta2, eps, step, weight_decay=0.0, decoupled=False,
                    steps_done=None):
        counter = self._steps_done(steps_done)
        if counter is None or not self._update(
                "adam_update", dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay),
                dict(decoupled=int(bool(decoupled)), step=int(step), steps_done=counter), p=p, g=g, m=m, v=v):
            super().adam_update(p, g, m, v, lr, beta1, beta2, eps, step, weight_decay, decoupled, steps_done)

    # -- dropout: the mask drawn in the kernel (kernels/random.cu), recomputed in the backward --
    def _dropout_launch(self, name, source, steps_done, per_model: dict, **arguments):
        """One launch of ``name`` over ``source`` (the input array); ``steps_done`` defaults to a
        zero counter on the device (the key's step is then the host's ``step``); ``per_model``:
        device arrays of K values."""
        steps_done = self._steps_done(steps_done)
        models = arguments.get("models", 1)
        groups = -(-source.size // models // 16)  # a thread per Philox block: 16 elements of one model
        # (a warp per 512 consecutive elements of one model: random.cu)
        blocks = max(1, min((groups + THREADS - 1) // THREADS, -(-self.sm_count * 16 // models)))
        output = self.xp.empty_like(source)
        kernel("random.cu", name, source.dtype)((blocks, models), (THREADS,), output=output, steps_done=steps_done,
                                               **arguments, **per_model)
        return output

    def _dropout_supported(self, x, steps_done) -> bool:
        return x.dtype in FLOAT_TYPES and x.flags.c_contiguous and x.size > 0 and self._steps_done(steps_done) is not None

    def dropout_forward(self, x, rate, seed, stream, step, steps_done=None):
        if not self._dropout_supported(x, steps_done):
            return super().dropout_forward(x, rate, seed, stream, step, steps_done)
        return self._dropout(x, rate, seed, stream, step, steps_done), Recomputed(x.dtype)

    def dropout_backward(self, gy, saved, rate, seed, stream, step, steps_done=None):
        if not isinstance(saved, Recomputed):  # the forward fell back to the reference and kept its mask
            return super().dropout_backward(gy, saved, rate, seed, stream, step, steps_done)
        if gy.dtype != saved.dtype:  # the reference's gy·(mask·scale in the forward's dtype): that mask made
            return gy * self._dropout(self.xp.ones(gy.shape, saved.dtype), rate, seed, stream, step, steps_done)
        return self._dropout(self.xp.ascontiguousarray(gy), rate, seed, stream, step, steps_done)

    def _dropout(self, source, rate, seed, stream, step, steps_done, name="dropout_apply", **arrays):
        """One launch of a mask-applying kernel of random.cu over ``source``'s elements (its
        ``input``, or the ``arrays`` it names)."""
        arrays = arrays or {"input": source}
        return self._dropout_launch(name, source, steps_done, {}, **arrays, n=source.size,
                                    threshold=math.ceil(rate * 2**LANE_BITS), scale=1.0 / (1.0 - rate),
                                    seed=_int64(seed), stream=_int64(stream), step=_int64(step),
                                    vectorized=int(self._aligned(*arrays.values())))  # the output: a new allocation

    def relu_dropout_forward(self, x, rate, seed, stream, step, steps_done=None):
        if not self._dropout_supported(x, steps_done):
            return super().relu_dropout_forward(x, rate, seed, stream, step, steps_done)
        return self._dropout(x, rate, seed, stream, step, steps_done, "relu_dropout_forward"), Recomputed(x.dtype)

    def relu_dropout_backward(self, gy, y, saved, rate, seed, stream, step, steps_done=None):
        if not isinstance(saved, Recomputed):  # the forward fell back to the reference and kept its mask
            return super().relu_dropout_backward(gy, y, saved, rate, seed, stream, step, steps_done)
        if gy.dtype != y.dtype:  # (a float64 gradient into a float32 model) as the reference pair computes it
            return self.relu_backward(self.dropout_backward(gy, saved, rate, seed, stream, step, steps_done), y)
        gy = self.xp.ascontiguousarray(gy)  # y is what the kernel wrote: contiguous, float
        return self._dropout(gy, rate, seed, stream, step, steps_done, "relu_dropout_backward", gy=gy, y=y)

    def stacked_dropout_forward(self, x, rates, seeds, stream, step, steps_done=None):
        if not self._dropout_supported(x, steps_done) or x.ndim != 3 or x.shape[1] > MAX_GRID_Y:
            return super().stacked_dropout_forward(x, rates, seeds, stream, step, steps_done)
        return self._stacked_dropout(x, rates, seeds, stream, step, steps_done), Recomputed(x.dtype)

    def stacked_dropout_backward(self, gy, saved, rates, seeds, stream, step, steps_done=None):
        if not isinstance(saved, Recomputed):
            return super().stacked_dropout_backward(gy, saved, rates, seeds, stream, step, steps_done)
        if gy.dtype != saved.dtype:  # as `dropout_backward`: the reference's product with the forward's dtype
            return gy * self._stacked_dropout(self.xp.ones(gy.shape, saved.dtype), rates, seeds, stream, step,
                                              steps_done)
        return self._stacked_dropout(self.xp.ascontiguousarray(gy), rates, seeds, stream, step, steps_done)

    def stacked_relu_dropout_forward(self, x, rates, seeds, stream, step, steps_done=None):
        if not self._dropout_supported(x, steps_done) or x.ndim != 3 or x.shape[1] > MAX_GRID_Y:
            return super().stacked_relu_dropout_forward(x, rates, seeds, stream, step, steps_done)
        return (self._stacked_dropout(x, rates, seeds, stream, step, steps_done, "stacked_relu_dropout_forward"),
                Recomputed(x.dtype))

    def stacked_relu_dropout_backward(self, gy, y, saved, rates, seeds, stream, step, steps_done=None):
        if not isinstance(saved, Recomputed):  # the forward fell back to the reference and kept its masks
            return super().stacked_relu_dropout_backward(gy, y, saved, rates, seeds, stream, step, steps_done)
        if gy.dtype != y.dtype:  # (a float64 gradient into a float32 model) as the reference pair computes it
            return self.relu_backward(self.stacked_dropout_backward(gy, saved, rates, seeds, stream, step, steps_done),
                                      y)
        gy = self.xp.ascontiguousarray(gy)  # y is what the kernel wrote: contiguous, float
        return self._stacked_dropout(gy, rates, seeds, stream, step, steps_done, "stacked_relu_dropout_backward",
                                     gy=gy, y=y)

    def _stacked_dropout(self, source, rates, seeds, stream, step, steps_done, name="stacked_dropout_apply",
                         **arrays):
        """One launch of a stacked mask-applying kernel of random.cu over ``source`` (B, K, C) (its
        ``input``, or the ``arrays`` it names), model k's slice with rates[k] and seeds[k]."""
        rows, models, cols = source.shape
        key = (np.asarray(rates, dtype=np.float64).tobytes(), tuple(seeds))
        per_model = self._model_keys.get(key)
        if per_model is None:  # once per layer, not per step: its rates and seeds do not change
            if len(self._model_keys) >= 64:
                self._model_keys.clear()
            rates = np.asarray(rates, dtype=np.float64)
            host = dict(threshold=np.ceil(rates * 2**LANE_BITS).astype(np.int32), scale=1.0 / (1.0 - rates),
                        seed=np.array([_int64(s) for s in seeds], dtype=np.int64))
            per_model = self._model_keys[key] = self._lasting(
                "stacked dropout layer", lambda: {part: self.xp.asarray(values) for part, values in host.items()})
        return self._dropout_launch(name, source, steps_done, per_model, **(arrays or {"input": source}), rows=rows,
                                    models=models, cols=cols, stream=_int64(stream), step=_int64(step))

    # -- activations and the loss: one launch each (kernels/activation.cu) -----------------
    def _elementwise_blocks(self, n: int) -> int:
        return max(1, min(-(-n // THREADS), self.sm_count * 16))

    def relu_forward(self, x):
        if x.dtype not in FLOAT_TYPES or not x.flags.c_contiguous or x.size == 0:
            return super().relu_forward(x)
        y = self.xp.empty_like(x)
        kernel("activation.cu", "relu_forward", x.dtype)((self._elementwise_blocks(x.size),), (THREADS,), x=x, y=y,
                                                          n=x.size)
        return y

    def relu_backward(self, gy, y):
        if y.dtype not in FLOAT_TYPES or gy.dtype != y.dtype or gy.shape != y.shape or y.size == 0 \
                or not (gy.flags.c_contiguous and y.flags.c_contiguous):
            return super().relu_backward(gy, y)
        gx = self.xp.empty_like(y)
        kernel("activation.cu", "relu_backward", y.dtype)((self._elementwise_blocks(y.size),), (THREADS,), gy=gy, y=y,
                                                           gx=gx, n=y.size)
        return gx

    def _elementwise_supported(self, *arrays) -> bool:
        """One kernel over the elements: float32/float64 arrays of one dtype and shape, each C-contiguous (a view
        of another layout, or anything else, is the reference's)."""
        first = arrays[0]
        return (first.dtype in FLOAT_TYPES and first.size > 0
                and all(a.dtype == first.dtype and a.shape == first.shape and a.flags.c_contiguous for a in arrays))

    def _elementwise(self, name: str, like, output: str, **arguments):
        """activation.cu's ``name`` over the elements of ``like``, its parameter ``output`` a new array like it
        (returned)."""
        out = self.xp.empty_like(like)
        kernel("activation.cu", name, like.dtype)((self._elementwise_blocks(like.size),), (THREADS,), **arguments,
                                                  **{output: out}, n=like.size)
        return out

    def tanh_forward(self, x):
        if not self._elementwise_supported(x):
            return super().tanh_forward(x)
        return self._elementwise("tanh_forward", x, "y", x=x)

    def tanh_backward(self, gy, y):
        if not self._elementwise_supported(y, gy):
            return super().tanh_backward(gy, y)
        return self._elementwise("tanh_backward", y, "gx", gy=gy, y=y)

    def sigmoid_forward(self, x):
        if not self._elementwise_supported(x):
            return super().sigmoid_forward(x)
        return self._elementwise("sigmoid_forward", x, "y", x=x)

    def sigmoid_backward(self, gy, y):
        if not self._elementwise_supported(y, gy):
            return super().sigmoid_backward(gy, y)
        return self._elementwise("sigmoid_backward", y, "gx", gy=gy, y=y)

    def leaky_relu_forward(self, x, slope):
        if not self._elementwise_supported(x):
            return super().leaky_relu_forward(x, slope)
        return self._elementwise("leaky_relu_forward", x, "y", x=x, slope=float(slope))

    def leaky_relu_backward(self, gy, saved, slope):
        if not self._elementwise_supported(saved, gy):
            return super().leaky_relu_backward(gy, saved, slope)
        return self._elementwise("leaky_relu_backward", saved, "gx", gy=gy, saved=saved, slope=float(slope))

    def _softmax_supported(self, z, labels, models) -> bool:
        # a thread per row: for the class counts of classifiers (MAX_CLASSES), not vocabularies
        return (z.dtype in FLOAT_TYPES and z.ndim == 2 and z.flags.c_contiguous and 0 < z.shape[1] <= MAX_CLASSES
                and z.shape[0] > 0 and models > 0 and z.shape[0] % models == 0
                and isinstance(labels, self.xp.ndarray) and labels.dtype == np.int64
                and labels.shape == (z.shape[0] // models,) and labels.flags.c_contiguous)

    def softmax_cross_entropy_forward(self, z, labels, models=1):
        if not self._softmax_supported(z, labels, models):
            return super().softmax_cross_entropy_forward(z, labels, models)
        (rows, classes), xp = z.shape, self.xp
        # the rows' losses and, after them, each model's mean (the last block's sums of them): one allocation
        probs, losses = xp.empty_like(z), xp.empty(rows + models, dtype=z.dtype)
        kernel("activation.cu", "softmax_ce_forward", z.dtype)((self._loss_blocks(rows),), (LOSS_THREADS,), z=z,
                                                                labels=labels, probs=probs, row_loss=losses[:rows],
                                                                loss=losses[rows:], counter=self._stream_counters(1),
                                                                rows=rows, classes=classes, models=models)
        return losses[rows:], probs

    def softmax_cross_entropy_backward(self, probs, labels, gy, models=1):
        if not (self._softmax_supported(probs, labels, models) and isinstance(gy, self.xp.ndarray)
                and gy.dtype == probs.dtype and gy.size == models):
            return super().softmax_cross_entropy_backward(probs, labels, gy, models)
        # K models' gradients come broadcast from a sum of their losses (stride 0: read in place, not copied)
        shared = gy.ndim == 1 and gy.strides[0] == 0
        gy = gy if shared else self.xp.ascontiguousarray(gy)
        (rows, classes), gz = probs.shape, self.xp.empty_like(probs)
        kernel("activation.cu", "softmax_ce_backward", probs.dtype)((self._elementwise_blocks(probs.size),),
                                                                     (THREADS,), probs=probs, labels=labels, gy=gy,
                                                                     gz=gz, rows=rows, classes=classes, models=models,
                                                                     gy_stride=0 if shared else 1)
        return gz

    def _loss_blocks(self, rows: int) -> int:
        """A loss forward's grid: a thread per row (or element), the mean in its last block."""
        return max(1, min(-(-rows // LOSS_THREADS), self.sm_count * 16))

    def _mean_loss(self, name: str, like, **arguments):
        """activation.cu's elementwise loss ``name`` over ``like``'s n elements: each element's loss and, after them,
        their mean (the last block's sum of them), one allocation; the mean returned, a (1,) view."""
        n = like.size
        losses = self.xp.empty(n + 1, dtype=like.dtype)
        kernel("activation.cu", name, like.dtype)((self._loss_blocks(n),), (LOSS_THREADS,), **arguments,
                                                  element_loss=losses[:n], loss=losses[n:],
                                                  counter=self._stream_counters(1), n=n)
        return losses[n:]

    def _gradient_supported(self, like, gy) -> bool:
        return isinstance(gy, self.xp.ndarray) and gy.dtype == like.dtype and gy.size == 1

    def binary_cross_entropy_forward(self, z, labels):
        if not self._elementwise_supported(z, labels):
            return super().binary_cross_entropy_forward(z, labels)
        return self._mean_loss("bce_forward", z, z=z, labels=labels)

    def binary_cross_entropy_backward(self, z, labels, gy):
        if not (self._elementwise_supported(z, labels) and self._gradient_supported(z, gy)):
            return super().binary_cross_entropy_backward(z, labels, gy)
        return self._elementwise("bce_backward", z, "gz", z=z, labels=labels, gy=gy)

    def squared_error_forward(self, predictions, targets):
        if not self._elementwise_supported(predictions, targets):
            return super().squared_error_forward(predictions, targets)
        return self._mean_loss("mse_forward", predictions, predictions=predictions, targets=targets)

    def squared_error_backward(self, predictions, targets, gy):
        if not (self._elementwise_supported(predictions, targets) and self._gradient_supported(predictions, gy)):
            return super().squared_error_backward(predictions, targets, gy)
        return self._elementwise("mse_backward", predictions, "gp", predictions=predictions, targets=targets, gy=gy)

    # -- batch norm -----------------------------------------------------------------------
    # Every kernel of kernels/batchnorm.cu runs on (BLOCK_X, BLOCK_Y) blocks; a thread owns `vec`
    # consecutive features. The two reductions finish in their last block, found with one int
    # counter per column of blocks: counters are zeroed once per stream and reset by the kernels.
    # Their block partials (and the backward's ∂L/∂γ, ∂L/∂β for bn_backward_dx) are scratch of one
    # call, in a workspace per stream (`_stream_workspace`); only what outlives the call is allocated.
    # γ and β are read where they are: a (C,) array or K stacked models' (K, C/K) rows (`_bn_row_layout`); the
    # momentum is a number or one per feature, read by the forward kernels (`_bn_momenta`).
    def _bn_vec(self, n_cols, *rows) -> int:
        """Features per thread: 16 bytes' worth when every row array is 16-byte aligned, else 1."""
        width = 16 // rows[0].dtype.itemsize
        return width if n_cols % width == 0 and self._aligned(*rows) else 1

    def _bn_grid(self, kern, n_rows, n_cols, vec, reduction):
        """(grid, rows per block). A reduction gets exactly one resident wave of blocks, each looping
        over its rows (fewest partials, no tail); an elementwise pass gets short blocks of ELEMENTWISE_ROWS."""
        key = (kern, n_rows, n_cols, vec)
        grid = self._grids.get(key)
        if grid is None:
            col_blocks = -(-n_cols // (BLOCK_X * vec))
            if reduction:
                wave = self.sm_count * self._resident_blocks(kern)
                row_blocks = max(1, min(wave // col_blocks, -(-n_rows // (ROW_GROUP * BLOCK_Y))))
                rows = -(-n_rows // row_blocks)
            else:
                rows = max(ELEMENTWISE_ROWS, -(-n_rows // MAX_GRID_Y))
            grid = self._grids[key] = ((col_blocks, -(-n_rows // rows)), rows)
        return grid

    def _resident_blocks(self, kern) -> int:
        """How many (BLOCK_X, BLOCK_Y) blocks of ``kern`` one SM holds at once (registers, shared memory)."""
        device, attrs = self.xp.cuda.Device().attributes, kern.attributes
        threads = BLOCK_X * BLOCK_Y
        regs_per_warp = -(-attrs["num_regs"] * 32 // 256) * 256  # allocated in units of 256
        by_regs = device["MaxRegistersPerMultiprocessor"] // (regs_per_warp * threads // 32)
        by_smem = device["MaxSharedMemoryPerMultiprocessor"] // (attrs["shared_size_bytes"] + 1024)
        return max(1, min(device["MaxThreadsPerMultiProcessor"] // threads, by_regs, by_smem))

    def _stream_counters(self, n):
        """At least ``n`` zeroed int32 counters of the last-block protocol, one set per stream: the kernels
        that count their blocks (the batch-norm reductions, the losses' means, the weight penalty's sums) run
        one after another on a stream, and each leaves its counters at 0."""
        stream = self.xp.cuda.get_current_stream().ptr
        counters = self._counters.get(stream)
        if counters is None or counters.size < n:
            counters = self._counters[stream] = self._lasting(
                "reduction's block counters on this stream", lambda: self.xp.zeros(max(n, 1024), dtype=self.xp.int32))
        return counters

    def _stream_workspace(self, n, dtype):
        """``n`` elements of ``dtype`` of scratch on the current stream, for what one call's kernels write and
        read and nothing reads after it (the reductions' block partials: batch norm's, the weight penalty's).
        One buffer per stream and dtype serves every layer and op, forward and backward: kernels on a stream run
        one after another, so a call's last read of it is done before the next call's first write — in a
        captured graph too, whose nodes keep the stream's order (a chain). Grown, never shrunk; a graph keeps the
        one it captured (`cached_arrays`)."""
        key = (self.xp.cuda.get_current_stream().ptr, np.dtype(dtype).str)
        workspace = self._workspaces.get(key)
        if workspace is None or workspace.size < n:
            workspace = self._workspaces[key] = self._lasting(
                "reductions' workspace on this stream", lambda: self.xp.empty(n, dtype=dtype))
        return workspace[:n]

    def _bn_supported(self, x, *columns) -> bool:
        return (x.ndim == 2 and x.dtype in FLOAT_TYPES and x.size > 0
                and all(c.dtype == x.dtype and c.flags.c_contiguous for c in columns))

    def _bn_affine(self, x, gamma, beta):
        """dict(gamma, beta, group, gamma_ld, beta_ld) by which the forward kernels read γ and β in place (x's
        dtype, rows alike: `_bn_row_layout`), or None where they cannot (the reference serves)."""
        n_cols = x.shape[-1]
        layouts = [a.dtype == x.dtype and self._bn_row_layout(a, n_cols) for a in (gamma, beta)]
        if not (layouts[0] and layouts[1]) or layouts[0][0] != layouts[1][0]:
            return None
        return dict(gamma=gamma, beta=beta, group=layouts[0][0], gamma_ld=layouts[0][1], beta_ld=layouts[1][1])

    def batchnorm_train_forward(self, x, gamma, beta, running_mean, running_var, momentum, eps):
        affine = self._bn_supported(x, running_mean, running_var) and self._bn_affine(x, gamma, beta)
        momenta = self._bn_momenta(momentum, x.shape[-1])
        if not affine or momenta is None:
            return super().batchnorm_train_forward(x, gamma, beta, running_mean, running_var, momentum, eps)
        xp, dt = self.xp, x.dtype
        x = xp.ascontiguousarray(x)
        n, c = x.shape
        block, y = (BLOCK_X, BLOCK_Y), xp.empty((n, c), dtype=dt)
        common = dict(x=x, n_rows=n, n_cols=c)
        stats = xp.empty((2, c), dtype=dt)  # μ, 1/√(σ² + ε): the backward reads them
        if self.forward_in_one_launch(n, c):
            kernel("batchnorm.cu", "bn_forward_small", dt, 1)(
                (-(-c // BLOCK_X), 1), block, **common, y=y, stats=stats, **affine,
                running_mean=running_mean, running_var=running_var, **momenta, eps=eps)
            return y, stats[0], stats[1]
        vec = self._bn_vec(c, x)
        stats_kernel, normalize = (kernel("batchnorm.cu", k, dt, vec) for k in ("bn_stats", "bn_normalize"))
        grid, rows = self._bn_grid(stats_kernel, n, c, vec, reduction=True)
        partials = self._stream_workspace(2 * grid[1] * c, dt).reshape(2 * grid[1], c)
        stats_kernel(grid, block, **common, rows_per_block=rows, stats=stats, partials=partials,
                     counters=self._stream_counters(grid[0]), running_mean=running_mean, running_var=running_var,
                     **momenta, eps=eps)
        grid, rows = self._bn_grid(normalize, n, c, vec, reduction=False)
        normalize(grid, block, **common, y=y, rows_per_block=rows, stats=stats, **affine)
        return y, stats[0], stats[1]

    def _bn_momenta(self, momentum, n_cols):
        """dict(momentum, momenta, per_feature) by which the forward kernels read m (`momentum_of` in batchnorm.cu):
        a number as a double, or one per feature — K stacked models' momenta, each repeated over its features — read
        in place from n_cols contiguous float64 on the device (`StackedBatchNorm` uploads them once), in the same
        launch; None for another array (the reference serves)."""
        if getattr(momentum, "ndim", 0) == 0:
            return dict(momentum=momentum, momenta=self._no_momenta, per_feature=0)  # (momenta: unread)
        if not (isinstance(momentum, self.xp.ndarray) and momentum.dtype == np.float64 and momentum.shape == (n_cols,)
                and momentum.flags.c_contiguous):
            return None
        return dict(momentum=0.0, momenta=momentum, per_feature=1)

    def forward_in_one_launch(self, n_rows: int, n_cols: int) -> bool:
        """Whether the training forward of (n_rows, n_cols) is one launch (`bn_forward_small`): for
        host-bound sizes, but that kernel has one block per BLOCK_X features, each walking every
        row twice, so fewer blocks than SMs over long columns leave the GPU idle (1024×1024 took
        44 µs, 1.2× torch's time, on the H200) where stats + normalize spread the rows
        (`benchmarks/bn_paths.py` times both)."""
        return n_rows <= SHORT_ROWS or (n_rows <= SMALL_ROWS and -(-n_cols // BLOCK_X) >= self.sm_count)

    def batchnorm_backward(self, dy, x, gamma, mean, inv_std, dgamma=None, dbeta=None, accumulate=False):
        gamma_layout = x.ndim == 2 and gamma.dtype == x.dtype and self._bn_row_layout(gamma, x.shape[1])
        if not self._bn_supported(x, mean, inv_std) or dy.dtype != x.dtype or not gamma_layout:
            return super().batchnorm_backward(dy, x, gamma, mean, inv_std, dgamma, dbeta, accumulate)
        xp, dt = self.xp, x.dtype
        dy, x = xp.ascontiguousarray(dy), xp.ascontiguousarray(x)
        n, c = x.shape
        # ∂L/∂γ, ∂L/∂β into the outputs by the reduction itself where it can address them (x's dtype, rows of unit
        # stride, the same features per row), else added here from its buffer (a launch each: the reference's way)
        layouts = [out is not None and out.dtype == dt and self._bn_row_layout(out, c) or None
                   for out in (dgamma, dbeta)]
        if layouts[0] and layouts[1] and layouts[0][0] != layouts[1][0]:
            layouts[1] = None
        group = next((layout[0] for layout in layouts if layout), c)
        vec, block = self._bn_vec(c, dy, x, mean), (BLOCK_X, BLOCK_Y)
        reduce, dx_kernel = (kernel("batchnorm.cu", k, dt, vec) for k in ("bn_backward_reduce", "bn_backward_dx"))
        common = dict(dy=dy, x=x, n_rows=n, n_cols=c, mean=mean, inv_std=inv_std)
        grid, rows = self._bn_grid(reduce, n, c, vec, reduction=True)
        # ∂L/∂γ, ∂L/∂β (what bn_backward_dx reads), then the reduction's partials: scratch of this call — the
        # host's adds below are queued before any later use of the workspace — but for a gradient returned
        workspace = self._stream_workspace((2 + 2 * grid[1]) * c, dt).reshape(2 + 2 * grid[1], c)
        grads = workspace[:2] if dgamma is not None and dbeta is not None else xp.empty((2, c), dtype=dt)
        outputs = bool(layouts[0]) * BN_OUT_DGAMMA | bool(layouts[1]) * BN_OUT_DBETA
        reduce(grid, block, **common, rows_per_block=rows, grads=grads, partials=workspace[2:],
               counters=self._stream_counters(grid[0]),
               dgamma=dgamma if layouts[0] else grads, dbeta=dbeta if layouts[1] else grads,  # (not named: unread)
               outputs=outputs, accumulate=int(accumulate), group=group,
               dgamma_ld=layouts[0][1] if layouts[0] else c, dbeta_ld=layouts[1][1] if layouts[1] else c)
        dx = xp.empty((n, c), dtype=dt)
        grid, rows = self._bn_grid(dx_kernel, n, c, vec, reduction=False)
        dx_kernel(grid, block, **common, dx=dx, rows_per_block=rows, gamma=gamma, group=gamma_layout[0],
                  gamma_ld=gamma_layout[1], grads=grads)
        results = [dx]
        for out, layout, batch in zip((dgamma, dbeta), layouts, grads[:2]):
            if out is not None and layout is None:
                batchnorm.write_or_add(out, batch.reshape(out.shape), accumulate)
            results.append(batch if out is None else out)
        return tuple(results)

    @staticmethod
    def _bn_row_layout(array, n_cols):
        """(features per row, row stride in elements) by which the kernels address ``array``, n_cols per-feature
        values (γ, β, or their gradients; `feature_at` in batchnorm.cu): a contiguous array as one row (C,),
        or K rows of unit stride ((K, C/K): K stacked models' views of their (K, P) buffer); None for another
        layout."""
        item = array.dtype.itemsize
        if array.size != n_cols or array.ndim not in (1, 2) or array.strides[-1] != item:
            return None
        if array.ndim == 1 or array.flags.c_contiguous:
            return n_cols, n_cols
        if array.strides[0] % item or array.strides[0] < array.shape[1] * item:
            return None
        return array.shape[1], array.strides[0] // item

    def batchnorm_inference(self, x, gamma, beta, running_mean, running_var, eps):
        affine = self._bn_supported(x, running_mean, running_var) and self._bn_affine(x, gamma, beta)
        if not affine:
            return super().batchnorm_inference(x, gamma, beta, running_mean, running_var, eps)
        xp, dt = self.xp, x.dtype
        x = xp.ascontiguousarray(x)
        n, c = x.shape
        vec = self._bn_vec(c, x)
        inference = kernel("batchnorm.cu", "bn_inference", dt, vec)
        grid, rows = self._bn_grid(inference, n, c, vec, reduction=False)
        y = xp.empty((n, c), dtype=dt)
        inference(grid, (BLOCK_X, BLOCK_Y), x=x, y=y, n_rows=n, n_cols=c, rows_per_block=rows,
                  running_mean=running_mean, running_var=running_var, **affine, eps=eps)
        return y


def _int64(value) -> int:
    """A 64-bit key word (seed, stream, step: taken mod 2⁶⁴ as the reference does) as the signed
    value of the same bits, which a ``long long`` parameter takes."""
    value = int(value) % 2**64
    return value - 2**64 if value >= 2**63 else value
