"""Processing script that records which interpreter runs it, into the folder given as argument."""

import json
import os
import sys
from pathlib import Path

(Path(sys.argv[1]) / "who.json").write_text(json.dumps({"wrapper": os.environ.get("VIA_WRAPPER")}))
