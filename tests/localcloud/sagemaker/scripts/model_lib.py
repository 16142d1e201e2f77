"""The 'model' of the training script: a threshold on age halfway between the labels' means."""


def fit(rows: list[dict[str, str]], label: str) -> float:
    rare = [float(r["age"]) for r in rows if r[label] == "rare"]
    common = [float(r["age"]) for r in rows if r[label] != "rare"]
    return (sum(rare) / len(rare) + sum(common) / len(common)) / 2
