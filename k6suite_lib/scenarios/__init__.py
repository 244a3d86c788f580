"""Scenario steps, one module per scenario; notebooks call these and display what they return.

Each step takes the open Scenario, adds verdicts that name their measurement, and returns frames.
"""
