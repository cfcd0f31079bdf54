"""Optimizers over flat parameter buffers, and learning-rate schedules."""

from xdl.optim import schedules
from xdl.optim.clipping import clip_grad_norm
from xdl.optim.optimizer import Optimizer, param_groups
from xdl.optim.rules import SGD, Adam, AdamW, Momentum, RMSprop
from xdl.optim.stacked import StackedOptimizer
from xdl.tensor import missing_module_attribute

# PyTorch's torch.optim names of what is here under another name (`__getattr__`)
PYTORCH_NAMES = {
    "lr_scheduler": "xdl.optim.schedules: functions count → lr, a Trainer's per-epoch schedule= or an optimizer's "
                    "per-step lr= (in a loop of your own, opt.lr = schedule(epoch) at each epoch's start); its "
                    "ReduceLROnPlateau is xdl.train.ReduceLROnPlateau, a Trainer callback",
}
# PyTorch's torch.nn.utils names of what is here (`__getattr__`): sought beside the optimizers, where
# xdl.optim.clip_grad_norm is, and said as torch.nn.utils', not as a torch.optim name
PYTORCH_NN_UTILS_NAMES = {
    "clip_grad_norm_": "xdl.optim.clip_grad_norm(model, max_norm) (no trailing underscore: it clips the gradients "
                       "in place all the same, and returns their norm before)",
}


def __getattr__(name: str):
    if name in PYTORCH_NN_UTILS_NAMES:
        missing_module_attribute(__name__, name, PYTORCH_NN_UTILS_NAMES, "nn.utils")
    missing_module_attribute(__name__, name, PYTORCH_NAMES, "optim")

__all__ = ["SGD", "Adam", "AdamW", "Momentum", "Optimizer", "RMSprop", "StackedOptimizer", "clip_grad_norm",
           "param_groups", "schedules"]
