"""The package around the binding: where it finds libnexus (NEXUS_LIB, else the checkout's
build), the errors when it cannot, pandas staying optional, stdlib datetimes in and out, and
the README quick start (examples/python/quickstart.py) against the in-tree library."""
import datetime
import decimal
import os
import subprocess
import sys

import nexuslite

PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(PKG_ROOT))


def run_python(code_or_args, env_changes, cwd=None):
    env = dict(os.environ, PYTHONPATH=PKG_ROOT)
    for k, v in env_changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    args = code_or_args if isinstance(code_or_args, list) else ["-c", code_or_args]
    return subprocess.run([sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True)


def test_nexus_lib_is_the_library_loaded():
    assert nexuslite.library_path() == os.path.abspath(os.environ["NEXUS_LIB"])


def test_a_checkout_without_nexus_lib_uses_target_release():
    r = run_python("import nexuslite; print(nexuslite.library_path())", {"NEXUS_LIB": None})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == os.path.join(REPO, "target", "release", "libnexus.so")


def test_a_missing_library_is_an_import_error_that_says_so(tmp_path):
    missing = str(tmp_path / "nope.so")
    r = run_python("import nexuslite", {"NEXUS_LIB": missing})
    assert r.returncode != 0
    assert f"ImportError: nexuslite: NEXUS_LIB={missing} is not a file" in r.stderr

    # A file that is no library: the loader's reason, and which file.
    bad = tmp_path / "libnexus.so"
    bad.write_text("not an ELF file")
    r = run_python("import nexuslite", {"NEXUS_LIB": str(bad)})
    assert r.returncode != 0
    assert f"ImportError: nexuslite: cannot load {bad}" in r.stderr


def test_without_pandas_documents_work_and_dataframes_name_the_extra():
    # sys.modules[name] = None makes `import pandas` raise ImportError, as if not installed.
    code = (
        "import sys; sys.modules['pandas'] = None; sys.modules['numpy'] = None\n"
        "import nexuslite\n"
        "c = nexuslite.open(':memory:').collection('c')\n"
        "c.insert_many([{'a': 1}])\n"
        "print([d['a'] for d in c.find({'a': 1})])\n"
        "c.find_dataframe()\n"
    )
    r = run_python(code, {})
    assert r.stdout == "[1]\n", r.stderr
    assert "ImportError: nexuslite: DataFrames need pandas: pip install nexuslite[pandas]" in r.stderr


def test_datetimes_and_decimals_round_trip_without_pandas():
    with nexuslite.open(":memory:") as db:
        c = db.collection("t")
        when = datetime.datetime(2024, 1, 2, 3, 4, 5, 123000)
        old = datetime.datetime(1901, 5, 6, 7, 8, 9)
        aware = datetime.datetime(2024, 1, 2, 5, 4, 5, 123000, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
        c.insert_many([{"_id": 1, "when": when, "old": old, "aware": aware, "price": decimal.Decimal("1.10")}])
        doc = next(c.find({"when": {"$gt": {"$date": "2024-01-01T00:00:00Z"}}}))
        assert doc["when"] == when and type(doc["when"]) is datetime.datetime
        assert doc["old"] == old
        assert doc["aware"] == when  # UTC, tz-naive
        assert doc["price"] == decimal.Decimal("1.10")


def test_readme_quick_start_runs(tmp_path):
    script = os.path.join(REPO, "examples", "python", "quickstart.py")
    r = run_python([script, "people.db"], {}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "updated: 1",
        '{"name": "grace", "age": 45, "langs": ["cobol"]}',
        '{"name": "ada", "age": 37, "langs": ["analytical engine", "python"]}',
        "people: 3",
    ]
    assert (tmp_path / "people.db").exists()
