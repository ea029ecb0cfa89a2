"""The `one_shot` presets, for --config=experiments/configs/one_shot_search.py:VARIANT
(`<space>_<strategy>[_<size>]`, e.g. nb201_gdas).

The presets live in the library (`nasjax.configs.one_shot`), where a notebook
imports them too; this file only points absl's --config flag at them.
"""
from nasjax.configs.one_shot_search import VARIANTS, get_config  # pylint: disable=unused-import
