"""A toy HPO ontology for tests: root <- abnormality <- nervous <- seizure <- focal seizure;
abnormality <- eye (term -> is_a parents)."""

PARENTS = {
    "HP:0000118": ["HP:0000001"],
    "HP:0000707": ["HP:0000118"],
    "HP:0001250": ["HP:0000707"],
    "HP:0007359": ["HP:0001250"],
    "HP:0000478": ["HP:0000118"],
}
