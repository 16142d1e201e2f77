"""Device side of dxops: a simulator that publishes vital-sign readings like a real device."""
