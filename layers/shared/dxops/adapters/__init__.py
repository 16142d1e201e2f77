"""Ports (interfaces the domain needs) and their AWS adapters. Tests swap in fakes."""
