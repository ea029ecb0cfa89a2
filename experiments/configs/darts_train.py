"""The `darts_train` presets, for --config=experiments/configs/darts_train.py:VARIANT.

The presets live in the library (`nasjax.configs.darts_train`), where a notebook
imports them too; this file only points absl's --config flag at them.
"""
from nasjax.configs.darts_train import VARIANTS, get_config  # pylint: disable=unused-import
