"""Layers and models. A layer declares its parameters; a model places them in one flat buffer."""

from xdl.nn.architecture import LAYERS, build, describe
from xdl.nn.layers import BatchNorm, Dense, Dropout, LeakyReLU, ReLU, Sigmoid, Softmax, Standardize, Tanh
from xdl.nn.mlp import ACTIVATIONS, mlp
from xdl.nn.module import Module
from xdl.nn.sequential import Sequential
from xdl.nn.stacked import Stacked, StackError, stack

__all__ = ["build", "describe", "ACTIVATIONS", "BatchNorm", "Dense", "Dropout", "LAYERS", "LeakyReLU", "Module", "ReLU", "Sequential", "Sigmoid",
           "Softmax", "StackError", "Stacked", "Standardize", "Tanh", "mlp", "stack"]
