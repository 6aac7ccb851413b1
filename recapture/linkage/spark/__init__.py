"""The linkage stage on Apache Spark, for registers beyond one machine.

The same settings, model and artifacts as the local (polars) engine, executed by Spark:
blocking rules become equi-joins, the comparison kinds and the scoring run on Arrow batches
through ``mapInArrow`` (one implementation of the comparison math, shared with the local
engine), the Fellegi–Sunter EM is fitted on the driver from pattern counts aggregated in
Spark, and persons come from connected components computed in Spark.

Needs the optional dependency pyspark (``pip install -e ".[spark]"``) and a Java 17 runtime;
nothing else in recapture imports this package.
"""
