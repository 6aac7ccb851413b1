"""recapture: population-size estimation from linked administrative registrations.

Stages talk through documented Parquet/JSON artifacts (see ``docs/artifacts.md``):
validation → linkage → capture histories → estimators → reports.
"""

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    """``__version__`` is looked up on first use: importlib.metadata scans the installed
    distributions, which ``recapture --help`` should not wait for."""
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("recapture")
        except PackageNotFoundError:  # running from a source tree without installation
            value = "0.0.0+unknown"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module 'recapture' has no attribute {name!r}")
