"""`Sequential`: layers applied in order, parameters in one flat buffer."""

from __future__ import annotations

import numpy as np

from xdl.flat import check_one_backend
from xdl.functions.regularization import layer_relu_dropout
from xdl.nn.layers import Dropout, ReLU
from xdl.nn.module import PYTORCH_NAMES, Module
from xdl.tensor import missing_attribute

# PyTorch's names for what a Sequential does under another name here (`Sequential.__getattr__`): its
# add_module appends to the layers the forward runs, which an attribute of a Sequential is not
SEQUENTIAL_NAMES = {**PYTORCH_NAMES, "add_module": "append(layer): the layers run in order, by number",
                    "insert": "a new Sequential of the layers in the order wanted"}


class Sequential(Module):
    """y = layer_k(… layer_2(layer_1(x)))

    >>> import xdl
    >>> from xdl.nn import Dense, ReLU, Sequential
    >>> model = Sequential(Dense(4, 8), ReLU(), Dense(8, 3))
    >>> model.predict(xdl.to_numpy(xdl.tensor([[0.1, 0.2, 0.3, 0.4]]))).shape
    (1,)
    """

    keras_names = {"layers": "the layers given as they are here: Sequential(*layers) or Sequential(list_of_layers)"}

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], list | tuple):
            layers = tuple(layers[0])
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: layer {i} is a {type(layer).__name__}, expected an xdl.nn.Module")
        self._hold(layers)
        self.flatten()

    def _hold(self, layers) -> None:
        """Register ``layers`` as the submodules "0", "1", … and keep them in order."""
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)
        object.__setattr__(self, "layers", list(layers))  # (registered one by one above: a list is not)

    def forward(self, x):
        layers, i = self.layers, 0
        while i < len(layers):
            # (the pairs run as one op open on a ReLU: any other layer costs no call to `_pair`)
            pair = self._pair(layers[i], layers[i + 1], x) if type(layers[i]) is ReLU and i + 1 < len(layers) else None
            if pair is not None:  # one op for the pair
                x = pair()
                i += 2
            else:
                x = layers[i](x)
                i += 1
        return x

    def _pair(self, layer, after, x):
        """``layer`` (a ReLU: `forward` asks of no other) then ``after`` on ``x`` as one op (a callable), or None
        where they run one by one."""
        if _fused(layer, after):
            # (its rate and key checked where they were set: `Dropout.checked_settings`)
            return lambda: layer_relu_dropout(x, after.rate, after.draw_key())
        return None

    def _first_layer(self):
        """The first layer, where this model runs its layers in order: a subclass with its own forward is a
        model of one's own, which may crop or reorder X before any layer sees it (its first forward pass tells)."""
        runs_in_order = type(self).forward is Sequential.forward
        return self.layers[0] if runs_in_order and self.layers else None

    def _host_layer(self):
        """The first layer (`_first_layer`), where it has a host form (`Module.network_input`: a `Standardize`)."""
        first = self._first_layer()
        return first if first is not None and _has_host_form(first) else None

    def __getitem__(self, i):
        """Layer ``i``; a slice is a Sequential of those layers, shared with this model (as in
        PyTorch). It owns no flat buffer: packing them anew would move this model's parameters out
        of its buffer, and an optimizer of this model would refuse to step. Its layers are numbered
        from 0, unlike PyTorch's, whose slice keeps their names: ``model[1:].state_dict()`` names
        ``0.weight`` what ``model.state_dict()`` names ``1.weight``."""
        if isinstance(i, slice):
            part = self._empty_part()
            part._hold(self.layers[i])
            return part
        # (list's "list indices must be integers" named neither the model nor what it takes)
        if not _is_index(i):
            raise TypeError(f"Sequential: model[i] takes a layer's index i (an int) or a slice, got {i!r}")
        self._check_layer_index(i)
        return self.layers[i]

    def _check_layer_index(self, i: int, beyond: str = "") -> None:
        """An IndexError naming the model's size (then ``beyond``) where ``i`` is no layer's index
        (list's "list index out of range" named neither the model nor its size)."""
        if not -len(self.layers) <= i < len(self.layers):
            raise IndexError(f"Sequential: layer {i} of {len(self.layers)} (indices {-len(self.layers)} to "
                             f"{len(self.layers) - 1}){beyond}")

    def _empty_part(self) -> Sequential:
        """The module a slice holds its layers in (`__getitem__`): a Sequential, which runs them in order,
        pairing them as this class does (`Stacked` gives a part that pairs its own layers)."""
        part = Sequential.__new__(Sequential)
        Module.__init__(part)
        return part

    def __setitem__(self, i: int, layer) -> None:
        """``model[i] = layer`` replaces layer ``i`` (as PyTorch's: one layer, by its index)."""
        if not _is_index(i):
            raise TypeError(f"Sequential: model[i] = layer takes one layer's index i (an int), got {i!r}; build a "
                            "new Sequential to replace several layers")
        self._check_layer_index(i, "; model.append(layer) adds one at the end")
        setattr(self, str(range(len(self.layers))[i]), layer)

    def append(self, layer) -> Sequential:
        """Add ``layer`` after the last one (PyTorch's ``Sequential.append``; returns the model): it
        runs last, trains and is saved as layer ``len(model)``. The parameters are packed anew, so an
        optimizer made before refuses to step: make it after.

        >>> from xdl.nn import Dense, ReLU, Sequential
        >>> len(Sequential(Dense(4, 8)).append(ReLU()).append(Dense(8, 3)))
        3
        """
        if not isinstance(layer, Module):
            raise TypeError(f"Sequential.append: layer must be an xdl.nn.Module, got {type(layer).__name__}")
        Module.__setattr__(self, str(len(self.layers)), layer)  # registered (or refused, nothing changed) first
        self.layers.append(layer)
        return self

    def extend(self, layers) -> Sequential:
        """`append` each of ``layers`` in turn (PyTorch's ``Sequential.extend``); all are checked first."""
        layers = list(layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential.extend: layers[{i}] is a {type(layer).__name__}, expected an "
                                "xdl.nn.Module")
        for i, layer in enumerate(layers):  # as append would check it: a refusal at the 2nd had added the 1st
            self._check_registrable(str(len(self.layers) + i), layer)
        if self.__dict__.get("_owns_flat"):  # and with each other: each was checked against the model's parameters,
            # of which a model with none yet has no backend, and append refused the 2nd after adding the 1st
            check_one_backend([p for layer in layers for p in layer.parameters()], "Sequential.extend")
        for layer in layers:
            self.append(layer)
        return self

    def __getattr__(self, name):
        return missing_attribute(self, name, SEQUENTIAL_NAMES)

    def __setattr__(self, name, value):
        held = "layers" in self.__dict__ and name.isdigit() and int(name) < len(self.layers)
        if held and not isinstance(value, Module):  # refused before anything changes
            raise TypeError(f"Sequential: layer {name} must be an xdl.nn.Module, got {type(value).__name__} (a layer "
                            "cannot be removed: the others' numbers would change; build a new Sequential)")
        if (not held and isinstance(value, Module) and "layers" in self.__dict__
                and type(self).forward is Sequential.forward):
            # registered, it trained and was saved but never ran: the forward runs the numbered layers only
            # (PyTorch's Sequential runs every submodule, an attribute too; add_module's hint led here)
            raise TypeError(f"Sequential: a module assigned as the attribute {name!r} would not run (the forward runs "
                            f"its {len(self.layers)} numbered layers, in order); model.append(layer) adds a layer at "
                            "the end, model[i] = layer replaces one")
        super().__setattr__(name, value)
        if held:  # the forward runs what is registered
            self.layers[int(name)] = value

    def __delitem__(self, i) -> None:
        """Refused, as ``delattr``: the others' numbers would change. A negative index or a slice
        (PyTorch's ``del model[-1]``) was looked up as an attribute named "-1": "no attribute". An index
        of no layer is an IndexError, as ``model[i] = layer``'s."""
        if isinstance(i, slice):
            raise TypeError(f"Sequential: layers [{'' if i.start is None else i.start}:"
                            f"{'' if i.stop is None else i.stop}] cannot be removed (the others' numbers would "
                            "change); build a new Sequential of the layers to keep")
        if _is_index(i):
            self._check_layer_index(i)  # (no such layer: -9 was "no attribute '-9'")
            i = range(len(self.layers))[i]
        delattr(self, str(i))

    def __delattr__(self, name):
        if "layers" in self.__dict__ and name.isdigit():
            raise TypeError(f"Sequential: layer {name} cannot be removed (the others' numbers would change); build a "
                            "new Sequential of the layers to keep")
        super().__delattr__(name)

    def __len__(self) -> int:
        return len(self.layers)

    def last_submodule(self):
        return self.layers[-1] if self.layers else None

    def outputs_probabilities(self) -> bool:
        """Whether the last layer is a softmax or a sigmoid (or a model that ends in one)."""
        return bool(self.layers) and self.layers[-1].outputs_probabilities()


def _has_host_form(layer) -> bool:
    """Whether ``layer``'s ``host_forward`` is its forward's: defined by the class whose ``forward``
    it runs (a subclass with its own forward, a clipped standardization, has none)."""
    defining = next(cls for cls in type(layer).__mro__ if "forward" in vars(cls))
    return "host_forward" in vars(defining) and layer.host_forward is not None


def _fused(layer, after) -> bool:
    """Whether ``layer`` then ``after`` run as one op: a ReLU before a keyed dropout in training
    (what a Trainer runs), whose pair `relu_dropout` computes bit for bit in one kernel each way."""
    return (type(layer) is ReLU and type(after) is Dropout and after.training and after.rate > 0.0
            and after.random_key is not None)


def _is_index(i) -> bool:
    """Whether ``i`` is a layer's index as a list takes one: an int or NumPy's, not a bool (True is no index)."""
    return isinstance(i, int | np.integer) and not isinstance(i, bool)
