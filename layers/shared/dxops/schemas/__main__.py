"""Export the JSON Schemas of the API and storage formats: python -m dxops.schemas [--out DIR]."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from dxops.schemas import (
    ClinicalRecord,
    DeviceBindingRequest,
    DevicePublication,
    PseudonymisedReading,
    PseudonymisedRecord,
)

EXPORTED: dict[str, type[BaseModel]] = {
    "clinical_record": ClinicalRecord,
    "device_publication": DevicePublication,
    "device_binding_request": DeviceBindingRequest,
    "raw_clinical_record": PseudonymisedRecord,
    "raw_device_reading": PseudonymisedReading,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("artifacts/schemas"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, model in EXPORTED.items():
        mode: Literal["validation", "serialization"] = (
            "validation" if model in (ClinicalRecord, DevicePublication, DeviceBindingRequest) else "serialization"
        )
        path = args.out / f"{name}.schema.json"
        path.write_text(json.dumps(model.model_json_schema(mode=mode), indent=2) + "\n")
        print(path)


if __name__ == "__main__":
    main()
