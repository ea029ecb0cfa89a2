"""Moved to `nasjax.bilevel`; this name stays an alias of it."""

import sys

from nasjax import bilevel

sys.modules[__name__] = bilevel
