"""Many files in one call, each read in a second process while the one before is written.

A regional or national load is many files: the postcode lookup, boundaries, every
council's register, ERIC, GP practices. Reading one (CSV to checked, typed columns)
needs no database and is about a third of its time; writing needs the database's one
writer. So :func:`load_sources` writes the files in order in this process while one
worker process reads the files after them: on two cores a national load takes the
writes' time plus the first file's read, not the sum of all.

The worker also prepares each site file once the files before it that change the
postcode or boundary tables are written: it locates rows by postcode, hashes them and
finds their footprints through a read-only connection (GeoPackage estates; a PostGIS
estate prepares here), leaving this process only the writes. Then, unless this process
is already waiting for that file, it binds the sites into rows ready to copy
(:func:`estates.db.store.stage_sites`): on a first load the writer inserts a 147,000-site
register with one ``INSERT ... SELECT`` (3.6 s instead of 7.3 s).

It also takes each file's SHA-256 for its load batch (the first file's too), and hands
what it made back through a file in a private temporary folder rather than the pool's
pipe (:func:`_hand_off`). Together these took a national load from 25 s to 21-22 s.

Each file is still its own load batch, exactly as its loader alone would write it.
"""

from __future__ import annotations

import inspect
import logging
import logging.handlers
import multiprocessing
import multiprocessing.queues
import os
import pickle
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from estates.db.engine import geopackage_reader
from estates.errors import ConfigurationError
from estates.estate import file_sha256_or_empty
from estates.ingest import boundaries, council, eric, points, postcodes
from estates.ingest._sites import PreparedSites, prepare_sites, stage
from estates.ingest.report import LoadReport, progress_bar

if TYPE_CHECKING:
    from estates.estate import Estate

log = logging.getLogger(__name__)

#: Files read ahead at most: bounds the memory of parsed files waiting to be written.
#: Three, so that a national load reads the boundaries and the first two registers
#: while the postcode lookup is written.
READ_AHEAD = 3

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class Source:
    """One file to load: its loader, its path and that loader's keyword options.

    ``loader`` is ``postcodes``, ``boundaries``, ``council``, ``eric`` or ``points``;
    ``options`` are the keyword arguments of ``load_<loader>`` (``kind`` for boundaries,
    ``organisation`` and ``sector`` for points, ...), ``progress`` apart.
    """

    loader: str
    path: PathLike
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Loader:
    """How to read a file (in any process) and how to write what was read (here)."""

    load: Callable[..., LoadReport]  # load_<loader>: checks the options
    read: Callable[..., Any]  # (path, options) -> parsed, in any process
    write: Callable[..., LoadReport]  # (estate, path, parsed, options, started, bar)
    steps: int  # of its progress bar
    label: str
    #: (read-only connection, parsed) -> PreparedSites, for a file of sites.
    prepare: Callable[[Connection, Any], PreparedSites] | None = None
    #: Whether writing it changes what preparing a later file reads.
    changes_lookups: bool = False


# Reads run in the worker, so they are module-level functions (a spawned process finds
# them by name); writes run here.


def _read_postcodes(path: PathLike, options: Mapping[str, Any]) -> Any:
    return postcodes.parse_postcode_file(path)


def _read_council(path: PathLike, options: Mapping[str, Any]) -> Any:
    profile = council.as_profile(options.get("profile"))
    return council.parse_council(path, organisation=options.get("organisation"), profile=profile)


def _read_eric(path: PathLike, options: Mapping[str, Any]) -> Any:
    return eric.parse_eric(path, options.get("period"))


def _read_points(path: PathLike, options: Mapping[str, Any]) -> Any:
    return points.parse_points(path, **options)


def _prepare_located(connection: Connection, parsed: Any) -> PreparedSites:
    return prepare_sites(connection, parsed.sites, parsed.easting, parsed.northing)


def _prepare_unlocated(connection: Connection, parsed: Any) -> PreparedSites:
    return prepare_sites(connection, parsed.sites)  # ERIC publishes no coordinates


def _without_options(write: Callable[..., LoadReport]) -> Callable[..., LoadReport]:
    """A write whose file carries everything it needs (postcodes, ERIC)."""

    def call(estate: Estate, path: PathLike, parsed: Any, options: Any, **run: Any) -> LoadReport:
        return write(estate, path, parsed, **run)

    return call


def _read_boundaries(path: PathLike, options: Mapping[str, Any]) -> Any:
    return boundaries.parse_boundaries(path, **options)


def _write_boundaries(
    estate: Estate, path: PathLike, parsed: Any, options: Mapping[str, Any], **run: Any
) -> LoadReport:
    return boundaries.write_merged(estate, path, boundaries.LOADER, parsed, **run)


def _write_council(
    estate: Estate, path: PathLike, parsed: Any, options: Mapping[str, Any], **run: Any
) -> LoadReport:
    profile = council.as_profile(options.get("profile"))
    organisation = options.get("organisation")
    return council.write_council(
        estate, path, parsed, organisation=organisation, profile=profile, **run
    )


def _write_points(
    estate: Estate, path: PathLike, parsed: Any, options: Mapping[str, Any], **run: Any
) -> LoadReport:
    full = {"category": None, "layer": None, **options}
    return points.write_points(estate, path, parsed, options=full, **run)


_LOADERS: dict[str, _Loader] = {
    "postcodes": _Loader(
        postcodes.load_postcodes,
        _read_postcodes,
        _without_options(postcodes.write_postcodes),
        4,
        "postcodes",
        changes_lookups=True,
    ),
    "boundaries": _Loader(
        boundaries.load_boundaries,
        _read_boundaries,
        _write_boundaries,
        3,
        "boundaries",
        changes_lookups=True,
    ),
    "council": _Loader(
        council.load_council,
        _read_council,
        _write_council,
        3,
        "council register",
        prepare=_prepare_located,
    ),
    "eric": _Loader(
        eric.load_eric,
        _read_eric,
        _without_options(eric.write_eric),
        4,
        "ERIC",
        prepare=_prepare_unlocated,
    ),
    "points": _Loader(
        points.load_points, _read_points, _write_points, 2, "points", prepare=_prepare_located
    ),
}


def load_sources(
    estate: Estate, sources: Sequence[Source], *, progress: bool = False
) -> list[LoadReport]:
    """Load the files in order, reading those after the current one in a second process.

    The result is what calling each ``load_<loader>`` in turn gives: each file its own
    load batch (all of it or none), the same site ids, rows and reports. While file *i*
    is written here, one worker process reads the next files (at most
    :data:`READ_AHEAD` waiting) and prepares their sites (see the module docstring);
    it never writes to the database. With one file no worker is started.

    Every source's loader and options are checked before anything is loaded. The first
    file that cannot be read or loaded stops the load there: the files before it stay
    loaded, its own batch leaves the database as it was, the files after it are not
    loaded, and the error names the file. A report's ``elapsed_s`` is the wall time
    spent on its file after the one before it was written, so the times add up.

    The worker is a new Python process (start method ``spawn``): in a script, call this
    under ``if __name__ == "__main__":``, as Python requires of any spawned process.
    """
    plan = [_checked(estate, source) for source in sources]
    if len(plan) <= 1:
        return [loader.load(estate, s.path, **s.options, progress=progress) for s, loader in plan]
    # Preparing reads the database: only a GeoPackage, through a read-only connection.
    database = estate.engine.url.database if estate.is_geopackage else None
    if database in ("", ":memory:"):
        database = None  # nothing another process could open
    reports: list[LoadReport] = []
    with _read_worker() as pool:
        # The worker runs its jobs in the order given, so they are given only once a
        # write is done: first the preparations it made possible, then reads to refill
        # the read-ahead. No job waits inside the worker for this process, and no read
        # is queued ahead of a preparation this process is about to wait for.
        reads: dict[int, Future[Any]] = {}  # each file read ahead: (its hash, its result or None)
        ahead: dict[int, Future[Any]] = {}  # the job whose result is the file to write
        waiting: list[int] = []  # read, to be prepared once what it depends on is written
        queue = iter(range(1, len(plan)))
        written = -1

        def prepare(j: int) -> None:
            assert database is not None
            ahead[j] = pool.submit(_prepare, j, plan[j][0].loader, database)

        def submit() -> None:
            for ready in [j for j in waiting if _depends_on(plan, j) <= written]:
                waiting.remove(ready)
                prepare(ready)
            while len(reads) < READ_AHEAD:
                j = next(queue, None)
                if j is None:
                    return
                source, loader = plan[j]
                # A file right after one it depends on is prepared here: the worker could
                # start no sooner, and this process would only wait for it.
                keep = (
                    database is not None
                    and loader.prepare is not None
                    and _depends_on(plan, j) != j - 1
                )
                reads[j] = ahead[j] = pool.submit(
                    _read, j, source.loader, source.path, dict(source.options), keep
                )
                if keep and _depends_on(plan, j) <= written:
                    prepare(j)
                elif keep:
                    waiting.append(j)

        first_hash = pool.submit(_hash, plan[0][0].path)  # while the first file is read here
        submit()
        started = time.perf_counter()
        for i, (source, loader) in enumerate(plan):
            bar = progress_bar(loader.steps, f"{loader.label} {i + 1}/{len(plan)}", progress)
            bar.set_postfix_str("reading")
            if i in reads:
                read = reads.pop(i)
                sha256, parsed = pool.result(i, read)  # the read's error, if it failed
                assert i not in waiting  # its dependency, before i - 1, is written
                if (job := ahead.pop(i)) is not read:  # its preparation
                    parsed = pool.result(i, job)
            else:  # the first file: every later one is read ahead
                parsed = loader.read(source.path, source.options)
                sha256 = first_hash.result()
            bar.update(1)
            run = {"started": started, "bar": bar, "sha256": sha256}
            reports.append(loader.write(estate, source.path, parsed, source.options, **run))
            written = i  # committed: a later file's preparation may read it now
            submit()
            started = time.perf_counter()
    return reports


def _depends_on(plan: Sequence[tuple[Source, _Loader]], i: int) -> int:
    """The last file before ``i`` whose write changes what preparing ``i`` reads; or -1."""
    return max((j for j in range(i) if plan[j][1].changes_lookups), default=-1)


# --- the worker -------------------------------------------------------------------------

#: In the worker: files read and waiting for their preparation, by their place in the plan.
_read_files: dict[int, Any] = {}


def _read(
    i: int, name: str, path: PathLike, options: dict[str, Any], keep: bool
) -> tuple[str | None, Any]:
    """In the worker: read a file; return its hash and it, or ``keep`` it here for
    :func:`_prepare`."""
    parsed = _LOADERS[name].read(path, options)
    sha256 = _hash(path)
    if not keep:
        return _hand_off((sha256, parsed))
    _read_files[i] = parsed
    return sha256, None


def _hash(path: PathLike) -> str | None:
    """In the worker: the file's hash for its load batch; None (hashed when written, with
    the error that gives) if it cannot be read now."""
    try:
        return file_sha256_or_empty(path)
    except OSError:
        return None


def _prepare(i: int, name: str, database: str) -> Any:
    """In the worker: prepare the sites of file ``i`` (read before) from ``database`` and
    return it. A preparation that fails (the file locked too long, say) is left to the
    parent, which prepares inside its batch, as a loader alone does."""
    parsed = _read_files.pop(i, None)
    if parsed is None:  # its read failed: the parent reports that
        return None
    loader = _LOADERS[name]
    assert loader.prepare is not None
    engine = geopackage_reader(database)
    try:
        with engine.connect() as connection:
            prepared = loader.prepare(connection, parsed)
        # Staging moves the writer's binding here (about 3 s per 150,000 sites), worth it
        # only while the writer is busy with an earlier file, not waiting for this one.
        staged = _parent_waits_for is None or _parent_waits_for.value != i
        if staged:
            stage(prepared)
        parsed.prepared = prepared
        log.debug(
            "file %d: sites prepared%s in the read-ahead worker", i + 1, " and staged" * staged
        )
    except Exception as error:  # the parent prepares it instead
        log.warning("file %d: preparing in the main process instead: %s", i + 1, error)
    finally:
        engine.dispose()
    return _hand_off(parsed)


@dataclass(frozen=True)
class _HandedOff:
    """A result the worker left in a file of the load's private folder (:func:`_hand_off`)."""

    path: str


def _hand_off(result: Any) -> Any:
    """In the worker: leave a file's parsed rows in a file for the parent, and say where.

    The pool would send them through a pipe: tens of megabytes (a prepared register with
    its staged rows is about 60 MB) in 64 KB pieces, each read by a thread of the parent
    that must wait for the parent's GIL while it writes, which kept this process waiting
    0.3-0.8 s per file. Outside a worker (no folder), or if the file cannot be written
    (a full disk), the result is returned as it is, through the pipe.
    """
    if _handoff_folder is None:
        return result
    path = None
    try:
        handle, path = tempfile.mkstemp(suffix=".pickle", dir=_handoff_folder)
        with os.fdopen(handle, "wb") as out:
            pickle.dump(result, out, protocol=pickle.HIGHEST_PROTOCOL)
    except OSError as error:
        log.debug("handing a result back through the pipe: %s", error)
        if path is not None:
            os.remove(path)
        return result
    return _HandedOff(path)


def _taken(result: Any) -> Any:
    """In the parent: a job's result, read back (and its file removed) if handed off."""
    if not isinstance(result, _HandedOff):
        return result
    try:
        with open(result.path, "rb") as handle:
            return pickle.load(handle)  # written by our own worker, in a folder only we can read
    finally:
        os.remove(result.path)


def _checked(estate: Estate, source: Source) -> tuple[Source, _Loader]:
    """The source with its loader, or :class:`ConfigurationError` naming what is wrong."""
    loader = _LOADERS.get(source.loader)
    if loader is None:
        raise ConfigurationError(
            f"{os.fspath(source.path)}: unknown loader {source.loader!r}; one of "
            f"{', '.join(_LOADERS)}"
        )
    try:
        inspect.signature(loader.load).bind(estate, source.path, **source.options)
    except TypeError as error:
        raise ConfigurationError(
            f"{os.fspath(source.path)}: options {dict(source.options)} do not fit the "
            f"{source.loader} loader: {error}"
        ) from None
    return source, loader


@contextmanager
def _read_worker() -> Iterator[_Worker]:
    """One worker process for reading, its log records handled here, shut down on exit.

    Start method ``spawn``, deliberately: ``fork`` would start faster, but the child
    would inherit this process's open database connections (SQLite file handles and
    locks, PostGIS sockets, SQLAlchemy's pool) and the locks its threads hold; SQLite
    must not be used across a fork, and a child that merely closed an inherited PostGIS
    connection would end the parent's session. A spawned child is a fresh interpreter
    holding none of that. Its start-up (about 2 s of imports) overlaps with this process
    reading the first file.

    The worker's log records (e.g. "not UTF-8; reading it as Windows-1252") come back
    through a queue to the logger of the same name here, whose levels and handlers
    decide what happens to them, as if the file had been read here.
    """
    context = multiprocessing.get_context("spawn")
    records: multiprocessing.queues.Queue[logging.LogRecord] = context.Queue()
    listener = logging.handlers.QueueListener(records, _Relay())
    listener.start()
    waits_for = context.RawValue("i", -1)
    handoff = tempfile.TemporaryDirectory(prefix="estates-read-ahead-")  # mode 0700
    pool = ProcessPoolExecutor(
        max_workers=1,
        mp_context=context,
        initializer=_start_worker,
        initargs=(records, waits_for, handoff.name),
    )
    try:
        yield _Worker(pool, waits_for)
    finally:
        # Waits for a read in progress (after an error its result is dropped), then for
        # the worker to exit: no process is left behind, and no file it handed off.
        pool.shutdown(wait=True, cancel_futures=True)
        handoff.cleanup()
        listener.stop()
        records.close()
        records.join_thread()


@dataclass
class _Worker:
    """The read-ahead pool and the file this process waits for (-1: none), which the
    worker reads to decide whether to stage a prepared file (see :func:`_prepare`)."""

    pool: ProcessPoolExecutor
    waits_for: Any  # a shared C int

    def submit(self, *args: Any) -> Future[Any]:
        return self.pool.submit(*args)

    def result(self, i: int, future: Future[Any]) -> Any:
        """File ``i``'s job result, telling the worker while this process waits for it."""
        self.waits_for.value = i
        try:
            return _taken(future.result())
        finally:
            self.waits_for.value = -1


#: In the worker: the parent's _Worker.waits_for, and the folder for :func:`_hand_off`.
_parent_waits_for: Any = None
_handoff_folder: str | None = None


def _start_worker(
    records: multiprocessing.queues.Queue[logging.LogRecord], waits_for: Any, handoff: str
) -> None:
    """In the worker: every ``estates`` log record goes to the parent (which filters),
    and Ctrl-C is left to the parent, which stops the load and then shuts this down."""
    global _parent_waits_for, _handoff_folder
    _parent_waits_for = waits_for
    _handoff_folder = handoff
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logger = logging.getLogger("estates")
    logger.addHandler(logging.handlers.QueueHandler(records))
    logger.setLevel(logging.DEBUG)
    logger.propagate = False


class _Relay(logging.Handler):
    """Hands a worker's log record to this process's logger of the same name."""

    def emit(self, record: logging.LogRecord) -> None:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
