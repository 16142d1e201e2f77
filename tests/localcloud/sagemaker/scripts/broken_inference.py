"""Inference script whose model cannot be loaded: model_fn raises, as with a corrupt artifact."""


def model_fn(model_dir):
    raise ValueError("the model artifact is corrupt")
