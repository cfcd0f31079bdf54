"""Differentiable functions on tensors; each is one `xdl.function.Function` subclass."""

from xdl.functions.arithmetic import add, div, mul, neg, pow, sub
from xdl.functions.batchnorm import batch_norm
from xdl.functions.dropout import dropout
from xdl.functions.elementwise import abs, exp, leaky_relu, log, relu, sigmoid, sqrt, tanh
from xdl.functions.linear import linear
from xdl.functions.losses import sigmoid_binary_cross_entropy, softmax_cross_entropy
from xdl.functions.matmul import matmul
from xdl.functions.reduction import max, mean, sum
from xdl.functions.shape import getitem, reshape, transpose
from xdl.functions.softmax import softmax

__all__ = [
    "abs", "add", "batch_norm", "div", "dropout", "exp", "getitem", "leaky_relu", "linear", "log", "matmul",
    "max", "mean", "mul", "neg", "pow", "relu", "reshape", "sigmoid", "sigmoid_binary_cross_entropy", "softmax",
    "softmax_cross_entropy", "sqrt", "sub", "sum", "tanh", "transpose",
]
