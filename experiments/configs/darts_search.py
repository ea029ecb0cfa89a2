"""The `darts_search` presets, for --config=experiments/configs/darts_search.py:VARIANT.

The presets live in the library (`nasjax.configs.darts_search`), where a notebook
imports them too; this file only points absl's --config flag at them.
"""
from nasjax.configs.darts_search import VARIANTS, get_config  # pylint: disable=unused-import
