"""Hypothesis's settings for the suite: the profiles (mflow-dev, mflow-ci, mflow-fuzz)
and the fuzz profile's example database, one folder per engine, and with
--mflow-db a Redis database shared by the machines of a campaign, which the run may
lose without failing (`Optional`). Without pytest: the plugin calls `register`."""

import os
import sys
import warnings


def register(engine, db_url, rootpath, active):
    """Register the mflow-dev, mflow-ci and mflow-fuzz profiles, and load the one
    MFLOW_PROFILE names (or mflow-dev, when the suite's tests run). ValueError: a usage
    error, one line; ImportError: Hypothesis is not installed."""
    from hypothesis import HealthCheck, settings
    default = settings.get_profile("default")
    slow_is_fine = [HealthCheck.too_slow, HealthCheck.filter_too_much,
                    HealthCheck.data_too_large]
    profiles = {
        "dev": dict(max_examples=25, deadline=None, suppress_health_check=slow_is_fine),
        "ci": dict(max_examples=60, derandomize=True, deadline=None, database=None,
                   print_blob=True, suppress_health_check=slow_is_fine),
        "fuzz": dict(max_examples=int(os.environ.get("MFLOW_FUZZ_EXAMPLES", "1000")),
                     deadline=None, print_blob=True, suppress_health_check=slow_is_fine,
                     # one database per engine: one engine's found examples are not
                     # replayed first on another
                     database=example_database(engine, db_url, rootpath, active)),
    }
    for name, kw in profiles.items():  # each from Hypothesis's default: none inherits another's
        settings.register_profile(f"mflow-{name}", parent=default, **kw)
    chosen = os.environ.get("MFLOW_PROFILE")
    if chosen is not None and chosen not in profiles:
        raise ValueError(f"MFLOW_PROFILE={chosen!r} is not a profile; "
                         f"choose one of {', '.join(profiles)}")
    if chosen or active:
        settings.load_profile(f"mflow-{chosen or 'dev'}")


def example_database(engine, url, rootpath, active):
    """The fuzz profile's example database: a local directory per engine, and with
    --mflow-db redis://host:port/n also a Redis database shared by every machine of
    the campaign (keys prefixed by the engine), so that what one machine finds the
    others replay first. Hypothesis's own databases: each machine writes what it
    finds to both, and reads both."""
    from hypothesis.database import DirectoryBasedExampleDatabase, MultiplexedDatabase
    engine = _safe(engine)
    local = DirectoryBasedExampleDatabase(str(rootpath / ".hypothesis" / "mflow-examples" /
                                              engine))
    if not url or not active:
        return local
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"--mflow-db {url!r}: give redis://host:port/n (the database "
                         "shared by the machines of a campaign)")
    try:
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase
    except ImportError:
        raise ValueError("--mflow-db needs the redis package: pip install "
                         "'mflow[scale]'") from None
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
        client.ping()
    except (ValueError, redis.RedisError) as e:
        raise ValueError(f"--mflow-db {url!r}: no Redis answers there "
                         f"({type(e).__name__}: {e})") from None
    shared = RedisExampleDatabase(client, key_prefix=f"mflow:{engine}:".encode())
    return MultiplexedDatabase(local, Optional(shared, url))


class Optional:
    """An example database the run can lose (a shared Redis server going away): its
    first error is one warning, and from then on it is left out, so the run goes on
    with the local database and nothing counts against the engine."""

    def __new__(cls, db, name):
        from hypothesis.database import ExampleDatabase

        class _Optional(ExampleDatabase):
            def __init__(self):
                super().__init__()
                self.db, self.name, self.lost = db, name, None

            def _use(self, method, *args, default=None):
                if self.lost is None:
                    try:
                        if method == "fetch":
                            return self._listed(*args)
                        return getattr(self.db, method)(*args)
                    except Exception as e:  # noqa: BLE001 - any failure of the server
                        self.lost = f"{type(e).__name__}: {e}"
                        _lost_database(self.name, self.lost)
                return default

            def fetch(self, key):  # Hypothesis's fetch is a generator: read it all here
                return self._use("fetch", key, default=())

            def _listed(self, key):
                return list(self.db.fetch(key))

            def save(self, key, value):
                self._use("save", key, value)

            def delete(self, key, value):
                self._use("delete", key, value)

            def move(self, src, dest, value):
                self._use("move", src, dest, value)
        return _Optional()


class SharedDatabaseLost(UserWarning):
    """The shared example database stopped answering; the run goes on without it."""


def _lost_database(name, error):
    with warnings.catch_warnings():  # a warning, never an error (-W error, filterwarnings)
        warnings.simplefilter("always")
        warnings.warn(SharedDatabaseLost(
            f"the shared example database {name} stopped answering ({error}); this run goes "
            "on with the local one"), stacklevel=3)
    print(f"mflow: the shared example database {name} stopped answering ({error}); going "
          "on with the local one", file=sys.stderr, flush=True)


def _safe(spec):
    """A folder name for an engine spec."""
    import re
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", spec or "mflow")[:100]
