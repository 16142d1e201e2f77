"""Test training script that fails, as a script with unusable data does: it exits non-zero."""

import sys

sys.exit("ValueError: the training channel holds no records")
