"""Inference script for binary bodies: input_fn gets the raw bytes, the answer is their length."""

import json


def model_fn(model_dir):
    return len


def input_fn(body, content_type):
    assert isinstance(body, (bytes, bytearray)), type(body)
    return bytes(body)


def output_fn(prediction, accept):
    return json.dumps({"length": prediction}), "application/json"
