"""Layers and models. A layer declares its parameters; a model places them in one flat buffer."""

from xdl.nn.layers import BatchNorm, Dense, Dropout, LeakyReLU, ReLU, Sigmoid, Softmax, Standardize, Tanh
from xdl.nn.mlp import ACTIVATIONS, mlp
from xdl.nn.module import Module
from xdl.nn.sequential import Sequential

LAYERS = {cls.__name__: cls for cls in (BatchNorm, Dense, Dropout, LeakyReLU, ReLU, Sigmoid, Softmax, Standardize, Tanh,
                                          Sequential)}

__all__ = ["ACTIVATIONS", "BatchNorm", "Dense", "Dropout", "LAYERS", "LeakyReLU", "Module", "ReLU", "Sequential", "Sigmoid",
           "Softmax", "Standardize", "Tanh", "mlp"]
