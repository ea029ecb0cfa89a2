"""The `lm_train` presets, for --config=experiments/configs/lm_train.py:VARIANT
(see `nasjax.configs.lm_train`)."""
from nasjax.configs.lm_train import VARIANTS, get_config  # pylint: disable=unused-import
