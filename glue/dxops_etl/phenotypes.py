"""Phenotype features: HPO terms -> one column per term (1 observed, -1 excluded, 0 not recorded).

Expansion along the ontology (true-path rule): a record that shows a term also shows every
ancestor of it (through is_a links), so an observed term is propagated upwards as observed.
Excluded terms are not propagated (excluding a term says nothing about its ancestors; its
descendants would be implied excluded, but no column needs that here): they stay -1 on the term
itself. When a term is both observed (directly or through a descendant) and excluded, observed
wins (1): the contradiction comes from the data and the observation is the more specific fact.
The ontology's root (HP:0000001 "All") and its direct children (sub-ontology roots such as
HP:0000118 "Phenotypic abnormality") carry no information and are never columns.

The ontology comes from the compact index (dxops.vocab.hpo: parents by term), not pyhpo. Terms
unknown to the index are kept as they are, without ancestors.

Columns are bounded: the terms (after expansion) recorded in at least ``min_records`` records, or
exactly a given vocabulary (pass the previous version's vocabulary to keep the columns stable).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from dxops.vocab.hpo import uninformative_terms

OBSERVED, EXCLUDED, ABSENT = 1, -1, 0

Parents = Mapping[str, Sequence[str]]


def ancestors(term: str, parents: Parents) -> set[str]:
    """The term and all its ancestors (iterative: the ontology is a DAG, paths share nodes)."""
    seen = {term}
    stack = [term]
    while stack:
        for parent in parents.get(stack.pop(), ()):
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def closure_rows(terms: Iterable[str], parents: Parents) -> list[tuple[str, str]]:
    """(term, ancestor-or-self) pairs for the given terms, without the uninformative roots."""
    skip = uninformative_terms(parents)
    return sorted((term, up) for term in set(terms) for up in ancestors(term, parents) if up not in skip)


def phenotypes_long(records: DataFrame) -> DataFrame:
    """(record_id, hpo_id, value): as recorded, 1 observed / -1 excluded (status null = observed)."""
    exploded = records.select("record_id", F.explode("phenotypes").alias("p"))
    value = F.when(F.col("p.status") == "excluded", F.lit(EXCLUDED)).otherwise(F.lit(OBSERVED))
    return exploded.select("record_id", F.col("p.hpo_id").alias("hpo_id"), value.alias("value")).filter(
        F.col("hpo_id").isNotNull()
    )


def expand(long: DataFrame, parents: Parents) -> DataFrame:
    """Observed terms propagated to their ancestors; one row per (record_id, hpo_id), observed wins."""
    observed_terms = [
        row["hpo_id"] for row in long.filter(F.col("value") == OBSERVED).select("hpo_id").distinct().collect()
    ]
    schema = StructType([StructField("hpo_id", StringType(), False), StructField("ancestor", StringType(), False)])
    closure = F.broadcast(long.sparkSession.createDataFrame(closure_rows(observed_terms, parents), schema))
    up = (
        long.filter(F.col("value") == OBSERVED)
        .join(closure, on="hpo_id")
        .select("record_id", F.col("ancestor").alias("hpo_id"), F.lit(OBSERVED).alias("value"))
    )
    down = long.filter(F.col("value") == EXCLUDED)
    return up.unionByName(down).groupBy("record_id", "hpo_id").agg(F.max("value").alias("value"))


def term_vocabulary(expanded: DataFrame, min_records: int) -> list[str]:
    """Terms recorded (observed or excluded, after expansion) in at least ``min_records`` records."""
    counted = expanded.groupBy("hpo_id").agg(F.countDistinct("record_id").alias("n")).filter(F.col("n") >= min_records)
    return sorted(row["hpo_id"] for row in counted.collect())


def phenotype_features(expanded: DataFrame, vocabulary: Sequence[str]) -> DataFrame:
    """record_id + one int column per vocabulary term (null where the record has no row: 0 later)."""
    if not vocabulary:
        return expanded.select("record_id").distinct()
    wide = (
        expanded.filter(F.col("hpo_id").isin(*vocabulary))
        .groupBy("record_id")
        .pivot("hpo_id", list(vocabulary))
        .agg(F.max("value"))
    )
    return wide.select("record_id", *[F.col(f"`{term}`").cast("int").alias(term) for term in vocabulary])
