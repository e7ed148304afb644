"""Runs flightrec's views (schemas/sql/*.sql, unchanged) on another SQL engine over a lake tree.

usage: views.py spark|duckdb LAKE SCHEMAS_SQL_DIR QUERIES_JSON OUT_JSON [SPARK_MASTER]

QUERIES_JSON is a list of [name, sql]; OUT_JSON receives {"executors": N, "results": [rows...]}
with every value as text (null as ""), rows sorted, so the caller compares them with DataFusion's.
SPARK_MASTER "local-cluster[2,1,1024]" runs two executor JVMs beside the driver.
"""
import json
import os
import sys



def text(v):
    return "" if v is None else str(v)


def views(sql_dir, run):
    for name in sorted(os.listdir(sql_dir)):
        if name.endswith(".sql"):
            with open(os.path.join(sql_dir, name)) as f:
                run(f.read())


def duckdb_results(lake, sql_dir, qs):
    import duckdb

    con = duckdb.connect()
    for table in sorted(os.listdir(lake)):
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{lake}/{table}/*/*/*.parquet', "
            "hive_partitioning = true, hive_types = {'host': VARCHAR, 'date': VARCHAR})"
        )
    views(sql_dir, con.execute)
    results = [sorted([text(v) for v in r] for r in con.execute(sql).fetchall()) for _, sql in qs]
    return 1, results


def spark_results(lake, sql_dir, qs, master):
    from pyspark.sql import SparkSession

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
    views(sql_dir, lambda sql: spark.sql(sql.replace("CREATE VIEW", "CREATE TEMPORARY VIEW", 1)))
    results = []
    for _, sql in qs:
        rows = [[text(v) for v in r] for r in spark.sql(sql).collect()]
        results.append(sorted(rows))
    # The driver counts itself among the block managers.
    executors = spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size() - 1
    spark.stop()
    return executors, results


def main():
    engine, lake, sql_dir, queries, out = sys.argv[1:6]
    with open(queries) as f:
        qs = json.load(f)
    if engine == "spark":
        executors, results = spark_results(lake, sql_dir, qs, sys.argv[6])
    else:
        executors, results = duckdb_results(lake, sql_dir, qs)
    with open(out, "w") as f:
        json.dump({"executors": executors, "results": results}, f)


if __name__ == "__main__":
    main()
