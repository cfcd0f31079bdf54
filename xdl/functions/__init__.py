"""Differentiable functions on tensors; each is one `xdl.function.Function` subclass."""

from xdl.functions.arithmetic import add, div, mul, neg, pow, sub
from xdl.functions.elementwise import abs, exp, leaky_relu, log, relu, sigmoid, sqrt, tanh
from xdl.functions.matmul import matmul
from xdl.functions.reduction import max, mean, sum
from xdl.functions.shape import getitem, reshape, transpose

__all__ = [
    "abs", "add", "div", "exp", "getitem", "leaky_relu", "log", "matmul", "max", "mean", "mul", "neg",
    "pow", "relu", "reshape", "sigmoid", "sqrt", "sub", "sum", "tanh", "transpose",
]
