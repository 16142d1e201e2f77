"""Clinical vocabularies the schemas validate against (HPO terms, code systems, measurements)."""
