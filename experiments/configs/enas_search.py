"""The `enas_search` presets, for --config=experiments/configs/enas_search.py:VARIANT.

The presets live in the library (`nasjax.configs.enas_search`), where a notebook
imports them too; this file only points absl's --config flag at them.
"""
from nasjax.configs.enas_search import VARIANTS, get_config  # pylint: disable=unused-import
