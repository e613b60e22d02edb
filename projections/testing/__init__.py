"""Helpers for testing projections."""

from .given import Scenario, given

__all__ = ["Scenario", "given"]
