"""ENAS (Pham et al., 2018): controllers and their REINFORCE training."""
