"""Layers and models. A layer declares its parameters; a model places them in one flat buffer."""

from xdl.nn.architecture import LAYERS, build, describe
from xdl.nn.layers import BatchNorm, Dense, Dropout, LeakyReLU, ReLU, Sigmoid, Softmax, Standardize, Tanh
from xdl.nn.mlp import ACTIVATIONS, mlp
from xdl.nn.module import Module
from xdl.nn.sequential import Sequential
from xdl.nn.stacked import Stacked, StackError, stack
from xdl.tensor import missing_module_attribute

# torch.nn's losses → xdl.losses' way (its `__getattr__` says it too)
PYTORCH_LOSSES = {
    "CrossEntropyLoss": "SoftmaxCrossEntropy() (on logits)",
    "MSELoss": "MeanSquaredError()",
    "BCEWithLogitsLoss": "BinaryCrossEntropy() (on logits)",
    "BCELoss": "BinaryCrossEntropy() on logits: leave the sigmoid out of the model (predict_proba applies it)",
    "NLLLoss": "SoftmaxCrossEntropy() on logits: leave the log_softmax out of the model",
}
# PyTorch's torch.nn names of what is here under another name (`__getattr__`)
PYTORCH_NAMES = {
    "Linear": "xdl.nn.Dense(in_features, out_features) (Keras's name; its weight is (in_features, out_features))",
    "BatchNorm1d": "xdl.nn.BatchNorm(features) (its momentum is Keras's: PyTorch's momentum=0.1 is 0.9 here)",
    "ModuleList": "xdl.nn.Sequential(...) (its layers by number), or an attribute per module",
    "utils": "xdl.optim.clip_grad_norm(model, max_norm) for its clip_grad_norm_",
    "functional": "xdl itself: every differentiable function is at its top level (xdl.relu, xdl.log_softmax, …)",
    **{name: f"xdl.losses.{way}" for name, way in PYTORCH_LOSSES.items()},
}


def __getattr__(name: str):
    missing_module_attribute(__name__, name, PYTORCH_NAMES, "nn")


__all__ = ["build", "describe", "ACTIVATIONS", "BatchNorm", "Dense", "Dropout", "LAYERS", "LeakyReLU", "Module", "ReLU", "Sequential", "Sigmoid",
           "Softmax", "StackError", "Stacked", "Standardize", "Tanh", "mlp", "stack"]
