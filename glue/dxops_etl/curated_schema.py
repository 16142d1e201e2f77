"""The curated table: the format the training code reads (schema version CURATED_SCHEMA_VERSION).

Location: <curated_path>/<dataset_version>/ as Parquet, partitioned by ``source`` (folders
source=<site>/; Spark, pyarrow and pandas restore the column on read). One row per clinical
record (deduplicated by record_id). Column order (within the files; ``source`` comes back last on
a partitioned read):

Reserved (identity, label, metadata; never features):
  record_id       string, not null, unique   client record id
  patient_id      string, not null           the patient's pseudonym (64 hex), never the identifier
  source          string, not null           site; the partition column
  encounter_date  date, not null
  label           string, null = unlabelled  diagnosis code (ICD10:/ORPHA:/OMIM:) when the
                                             diagnosis is confirmed; null when suspected or absent
  label_status    string, not null           confirmed | suspected | none
  ingested_at     timestamp (UTC), not null  when the kept version of the record reached the raw
                                             zone (freshness; lineage)
Features:
  age_years       double, null = unknown     age at the encounter (capped at 90 at ingestion)
  sex             string, not null           female | male | other | unknown (missing -> unknown)
  HP:nnnnnnn      int, not null              one per phenotype term of the vocabulary: 1 observed
                                             (directly or through a descendant), -1 excluded,
                                             0 not recorded (absence is not exclusion)
  <LOINC>         double, null = not measured  one per lab of glue/dxops_etl/units.py LABS, in its
                                             canonical UCUM unit; also null when the unit was
                                             unknown (counted in run_summary.json)
  <LOINC>         double, null = not measured  one per vital sign of the measurement table
                                             (8867-4 heart rate, ...), canonical unit
  dev_readings    int, not null              device readings in the window before the encounter
  dev_<LOINC>_{mean,min,max,last}  double, null = no reading   per vital, device window
  hx_<code>       int, not null              1 when the code is in the record's history, else 0;
                                             codes present in >= history_min_records records

Differences from the simulator's curated.csv (cohorts/output.py CURATED_FORMAT): the same names
for record_id, patient_id, label, age_years, sex, HP: and LOINC columns and the same 1/-1/0
coding; here also source, encounter_date, label_status, ingested_at, device and history columns;
phenotype columns come from the data (terms after ontology expansion, bounded) or a given
vocabulary, not from the catalog; labels are null for unconfirmed diagnoses; Parquet types.
"""

from __future__ import annotations

from collections.abc import Sequence

RESERVED_COLUMNS: tuple[str, ...] = (
    "record_id",
    "patient_id",
    "source",
    "encounter_date",
    "label",
    "label_status",
    "ingested_at",
)
DEMOGRAPHIC_COLUMNS: tuple[str, ...] = ("age_years", "sex")
PARTITION_COLUMNS: tuple[str, ...] = ("source",)
SEXES: tuple[str, ...] = ("female", "male", "other", "unknown")
LABEL_STATUSES: tuple[str, ...] = ("confirmed", "suspected", "none")


def column_groups(
    phenotypes: Sequence[str], labs: Sequence[str], vitals: Sequence[str], device: Sequence[str], history: Sequence[str]
) -> dict[str, list[str]]:
    """The table's columns by group, in order: written into run_summary.json for the training code."""
    return {
        "reserved": list(RESERVED_COLUMNS),
        "demographics": list(DEMOGRAPHIC_COLUMNS),
        "phenotypes": list(phenotypes),
        "labs": list(labs),
        "vitals": list(vitals),
        "device": list(device),
        "history": list(history),
    }
