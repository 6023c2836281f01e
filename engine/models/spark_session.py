"""A quiet Spark session for one training run, and Spark's failures as one ``SparkJobError``.

``spark_session(master, memory, log_path)`` yields a ``pyspark.sql.SparkSession`` on ``master``
(``local[2]``, ``spark://host:7077``, ``yarn``...) and stops it afterwards, unless it found one
already running in this process on the same master (a test's module-scoped session, a notebook's):
that one it uses and leaves running.  Another master running here is refused: a JVM holds one
SparkContext at a time.

Quiet, because ``recops train`` prints one table (or JSON) and tests keep their output clean:

* the JVM's own stdout and stderr (log4j's console appender, the "incubator modules" notice, a
  stack trace) go to ``log_path``, not the terminal — the JVM is started with its output there;
* no web UI, no progress bars, log level ERROR.

Everything Spark can throw on the way — no Java (``JAVA_GATEWAY_EXITED``), a master URL it cannot
parse or reach, a job that fails or a JVM that was killed (the Py4J connection drops) — comes out as
``SparkJobError`` with a one-line message pointing at the log.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

# what a failure message keeps of Spark's text (its first line: a Java error is a page of stack)
MESSAGE_CHARS = 300
APP_NAME = "recops-train"


class SparkJobError(RuntimeError):
    """Spark could not run the job (start, connect, compute): the registry was not touched."""


def spark_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a Spark job raises when it fails (imported late: pyspark is optional)."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    return PySparkException, Py4JError, ConnectionError, OSError


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), text)
    return line if len(line) <= MESSAGE_CHARS else line[: MESSAGE_CHARS - 1] + "…"


@contextmanager
def spark_failures(what: str, log_path: Path | None) -> Iterator[None]:
    """Re-raise Spark's failures inside the block as ``SparkJobError("<what> failed: <first line>")``."""
    try:
        yield
    except ImportError as exc:
        raise SparkJobError(f"{what}: pyspark is not installed ({exc}); pip install 'recops[spark]'") from exc
    except spark_errors() as exc:
        where = f" (Spark's log: {log_path})" if log_path is not None else ""
        raise SparkJobError(f"{what} failed: {first_line(exc)}{where}") from exc


def _conf(master: str, memory: str | None) -> SparkConf:
    from pyspark import SparkConf

    conf = (
        SparkConf()
        .setMaster(master)
        .setAppName(APP_NAME)
        .set("spark.ui.enabled", "false")
        .set("spark.ui.showConsoleProgress", "false")
        # a training run's tables are small per partition; the default 200 shuffle partitions cost
        # seconds of scheduling on two cores for nothing
        .set("spark.sql.shuffle.partitions", "8")
    )
    if memory:
        conf.set("spark.driver.memory", memory).set("spark.executor.memory", memory)
    return conf


def _running(master: str) -> SparkSession | None:
    """The session already running in this process, if any; refused when it runs elsewhere."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is None:
        return None
    if active.sparkContext.master != master:
        raise SparkJobError(f"a Spark session on {active.sparkContext.master!r} already runs in this process; "
                            f"cannot start one on {master!r}")
    return active


def _start(master: str, memory: str | None, log_path: Path) -> SparkSession:
    from pyspark import SparkContext
    from pyspark.java_gateway import launch_gateway
    from pyspark.sql import SparkSession

    conf = _conf(master, memory)
    gateway = None
    # one JVM serves every SparkContext of the process: start it (with its output in the log) only
    # when none is up yet — pyspark would otherwise start its own, writing to our terminal
    if SparkContext._gateway is None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            gateway = launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": log})
    context = SparkContext(conf=conf, gateway=gateway)
    context.setLogLevel("ERROR")
    return SparkSession(context)


@contextmanager
def spark_session(master: str, memory: str | None, log_path: Path) -> Iterator[SparkSession]:
    """A session on ``master`` for the block (see the module docstring); raises ``SparkJobError``."""
    with warnings.catch_warnings():
        # pyspark 4.3 warns once it meets pandas 3 (its test helpers, imported by its ML code), though
        # nothing here hands it pandas: on a terminal that is a paragraph after `recops train`'s table
        warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
        with spark_failures(f"Spark on {master}", log_path):
            running = _running(master)
            session = running or _start(master, memory, log_path)
        try:
            yield session
        finally:
            if running is None:
                # a JVM that died mid-job cannot be stopped cleanly: the job's own error is the one to report
                with suppress(*spark_errors()):
                    session.stop()
