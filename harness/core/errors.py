"""The root of every error dtg-hil defines.

Each error keeps its standard base too (`class ScenarioError(DtgHilError, ValueError)`), so an existing
`except ValueError` still catches it, and `except DtgHilError` catches any of them.
"""


class DtgHilError(Exception):
    """Any error dtg-hil raises on purpose."""
