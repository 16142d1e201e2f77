"""Table -> feature matrix, in two steps so that SMOTENC can sit between them.

1. `FeaturePreparer`: phenotypes as they are (1 / -1 / 0), numeric columns median-imputed and
   standardised with a missing-value indicator each (labs are missing far more often than not,
   and missingness itself is informative), categorical columns as ordinal codes (a code for
   missing, one for categories unseen in training). Output: a sparse CSR matrix.
2. `CategoricalExpander`: the ordinal codes one-hot encoded (after resampling, so that SMOTENC
   sees whole categories, not one-hot columns it would interpolate).

Both are fitted on training rows only (inside each cross-validation fold).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from ml.table import ColumnRoles

MISSING = "__missing__"


class FeaturePreparer(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Fitted on a DataFrame holding the roles' columns (ml.table.conform)."""

    def __init__(self, roles: ColumnRoles) -> None:
        self.roles = roles

    def fit(self, frame: pd.DataFrame, y: Any = None) -> FeaturePreparer:
        numeric = frame[list(self.roles.numeric)].to_numpy(dtype=np.float64)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a column with no value: median 0, scale 1
            self.medians_ = np.nan_to_num(np.nanmedian(numeric, axis=0)) if numeric.size else np.zeros(0)
            scale = np.nanstd(numeric, axis=0) if numeric.size else np.zeros(0)
        self.scales_ = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        self.ordinal_ = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float64)
        if self.roles.categorical:
            self.ordinal_.fit(self._categories(frame))
        return self

    def _categories(self, frame: pd.DataFrame) -> NDArray[np.object_]:
        values = frame[list(self.roles.categorical)].astype("object")
        return np.asarray(values.where(values.notna(), MISSING).astype(str).to_numpy(), dtype=object)

    @property
    def categorical_indices(self) -> list[int]:
        start = len(self.roles.phenotypes) + 2 * len(self.roles.numeric)
        return list(range(start, start + len(self.roles.categorical)))

    def transform(self, frame: pd.DataFrame) -> sp.csr_matrix:
        blocks: list[Any] = [sp.csr_matrix(frame[list(self.roles.phenotypes)].to_numpy(dtype=np.float32))]
        if self.roles.numeric:
            numeric = frame[list(self.roles.numeric)].to_numpy(dtype=np.float64)
            missing = np.isnan(numeric)
            filled = np.where(missing, self.medians_, numeric)
            blocks.append(sp.csr_matrix(((filled - self.medians_) / self.scales_).astype(np.float32)))
            blocks.append(sp.csr_matrix(missing.astype(np.float32)))
        if self.roles.categorical:
            # Codes shifted by one so that 0 (an implicit zero of the sparse matrix) is "unseen".
            codes = self.ordinal_.transform(self._categories(frame)) + 1
            blocks.append(sp.csr_matrix(codes.astype(np.float32)))
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def category_labels(self) -> list[list[str]]:
        """Per categorical column, the label of each code (0 = unseen in training)."""
        if not self.roles.categorical:
            return []
        return [["(unseen)", *map(str, categories)] for categories in self.ordinal_.categories_]

    def feature_names(self) -> list[str]:
        return [
            *self.roles.phenotypes,
            *self.roles.numeric,
            *(f"{name} missing" for name in self.roles.numeric),
            *self.roles.categorical,
        ]


class CategoricalExpander(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """One-hot encodes the ordinal code columns of a FeaturePreparer's output."""

    def __init__(self, categorical_indices: list[int], names: list[str], labels: list[list[str]]) -> None:
        self.categorical_indices = categorical_indices
        self.names = names
        self.labels = labels

    def fit(self, matrix: sp.csr_matrix, y: Any = None) -> CategoricalExpander:
        self.onehot_ = OneHotEncoder(handle_unknown="ignore", dtype=np.float32)
        if self.categorical_indices:
            self.onehot_.fit(np.rint(matrix[:, self.categorical_indices].toarray()))
        return self

    def transform(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        if not self.categorical_indices:
            return matrix.tocsr()
        keep = [i for i in range(matrix.shape[1]) if i not in set(self.categorical_indices)]
        onehot = self.onehot_.transform(np.rint(matrix[:, self.categorical_indices].toarray()))
        return sp.hstack([matrix[:, keep], onehot], format="csr", dtype=np.float32)

    def feature_names(self) -> list[str]:
        categorical = set(self.categorical_indices)
        kept = [name for i, name in enumerate(self.names) if i not in categorical]
        if not self.categorical_indices:
            return kept
        expanded: list[str] = []
        for index, labels, codes in zip(self.categorical_indices, self.labels, self.onehot_.categories_, strict=True):
            expanded.extend(f"{self.names[index]}={labels[int(code)]}" for code in codes)
        return [*kept, *expanded]
