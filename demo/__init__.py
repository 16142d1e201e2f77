"""`make demo`: dxops end to end on the local cloud, with no AWS account."""
