"""Moved to `nasjax.optim`; this name stays an alias of it."""

import sys

from nasjax import optim

sys.modules[__name__] = optim
