"""Runs flightrec's views (schemas/sql/*.sql, unchanged) on Apache Spark over a lake tree.

usage: views.py LAKE SCHEMAS_SQL_DIR QUERIES_JSON OUT_JSON MASTER

QUERIES_JSON is a list of [name, sql]; OUT_JSON receives {"executors": N, "results": [rows...]}
with every value as text (null as ""), rows sorted, so the caller compares them with DataFusion's.
MASTER "local-cluster[2,1,1024]" runs two executor JVMs beside the driver.
"""
import json
import os
import sys

from pyspark.sql import SparkSession


def text(v):
    return "" if v is None else str(v)


def main():
    lake, sql_dir, queries, out, master = sys.argv[1:6]
    spark = (
        SparkSession.builder.master(master)
        .appName("flightrec-views")
        .config("spark.executor.memory", "768m")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    for table in sorted(os.listdir(lake)):
        path = os.path.join(lake, table)
        spark.read.option("basePath", path).parquet(path).createOrReplaceTempView(table)
    for name in sorted(os.listdir(sql_dir)):
        if name.endswith(".sql"):
            with open(os.path.join(sql_dir, name)) as f:
                spark.sql(f.read().replace("CREATE VIEW", "CREATE TEMPORARY VIEW", 1))
    with open(queries) as f:
        qs = json.load(f)
    results = []
    for _, sql in qs:
        rows = [[text(v) for v in r] for r in spark.sql(sql).collect()]
        results.append(sorted(rows))
    # The driver counts itself among the block managers.
    executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1
    with open(out, "w") as f:
        json.dump({"executors": executors, "results": results}, f)
    spark.stop()


if __name__ == "__main__":
    main()
