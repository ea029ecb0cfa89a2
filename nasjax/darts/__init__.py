"""DARTS: differentiable architecture search (Liu, Simonyan and Yang, ICLR 2019)."""
