"""Domain logic: plain Python, no AWS calls (those go through the ports in dxops.adapters)."""
