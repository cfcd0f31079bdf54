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


def __getattr__(name: str):
    missing_module_attribute(__name__, name, PYTORCH_NAMES, "optim")

__all__ = ["SGD", "Adam", "AdamW", "Momentum", "Optimizer", "RMSprop", "StackedOptimizer", "clip_grad_norm",
           "param_groups", "schedules"]
