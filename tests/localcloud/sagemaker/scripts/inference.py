"""Inference script (SageMaker serving contract) for the model train.py writes: age >= threshold -> rare."""

import json
import os


def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.json")) as f:
        return json.load(f)


def input_fn(body, content_type):
    if content_type != "application/json":
        raise ValueError(f"unsupported content type {content_type}")
    data = json.loads(body)
    return data if isinstance(data, list) else [data]


def predict_fn(records, model):
    return [
        {"label": "rare" if record["age"] >= model["threshold"] else "common", "model": model["version"]}
        for record in records
    ]


def output_fn(predictions, accept):
    return json.dumps({"predictions": predictions}), "application/json"
