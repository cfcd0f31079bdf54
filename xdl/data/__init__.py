"""Data handling for the training workflow: splits, input normalization, mini-batches, one-hot
labels, augmentation, and the input checks everything else relies on."""

from xdl.data.augment import Augment
from xdl.data.batches import batch_bounds, minibatches, one_hot, training_batches
from xdl.data.split import Split, holdout_sizes, split
from xdl.data.standardizer import Standardizer
from xdl.data.validation import check_features, check_labels

__all__ = ["Augment", "Split", "Standardizer", "batch_bounds", "check_features", "check_labels", "holdout_sizes", "minibatches",
           "one_hot", "split", "training_batches"]
