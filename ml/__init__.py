"""dxops models: the knowledge model over the HPO disease annotations (ml/knowledge.py) and the
command-line entry points (ml/rank.py: dxops-rank). Training and inference land with issue 6."""
