"""The `selection` presets, for --config=experiments/configs/selection.py:VARIANT.

The presets live in the library (`nasjax.configs.selection`), where a
notebook imports them too; this file only points absl's --config flag at them.
"""
from nasjax.configs.selection import VARIANTS, get_config  # pylint: disable=unused-import
