"""recapture: population-size estimation from linked administrative registrations.

Stages talk through documented Parquet/JSON artifacts (see ``docs/artifacts.md``):
validation → linkage → capture histories → estimators → reports.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("recapture")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
