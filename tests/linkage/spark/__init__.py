"""Tests of the Spark engine (a package, so that its conftest is not imported as the top-level
``conftest`` that other test modules import ``pipeline_toml`` from)."""
