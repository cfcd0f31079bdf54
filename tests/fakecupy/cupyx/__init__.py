"""cupyx.scatter_add on the stand-in's arrays."""
import numpy as np

import cupy


def scatter_add(a, slices, value):
    cupy._call(np.add.at, (a, slices, value), {})
