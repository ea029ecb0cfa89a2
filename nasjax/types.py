"""Type aliases shared across nasjax (optax `base.py` style)."""
from typing import Any, Mapping

import jax

PyTree = Any
Params = PyTree
BatchStats = PyTree
Alpha = Mapping[str, jax.Array]   # cell type -> [edges, ops] logits
Batch = Mapping[str, jax.Array]   # 'image': [B, H, W, C] uint8, 'label': [B]
PRNGKey = jax.Array
Metrics = dict[str, jax.Array]
