"""Starts `nexus serve` (NEXUS_BIN) on a free loopback port against a temporary data
directory, once per test module, and hands the tests a pymongo client."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pymongo
import pytest

NEXUS_BIN = os.environ.get("NEXUS_BIN", "target/release/nexus")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `nexus serve` process."""

    def __init__(self, data_dir, extra=()):
        self.data_dir = data_dir
        self.port = free_port()
        self.proc = subprocess.Popen(
            [NEXUS_BIN, "serve", "--data-dir", data_dir, "--mongo", f"127.0.0.1:{self.port}", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # The one line on start names the address: wait for it.
        self.banner = self.proc.stdout.readline()
        assert f"127.0.0.1:{self.port}" in self.banner, self.banner + self.proc.stderr.read()

    @property
    def uri(self):
        return f"mongodb://127.0.0.1:{self.port}/"

    def client(self, **kw):
        kw.setdefault("serverSelectionTimeoutMS", 5000)
        return pymongo.MongoClient(self.uri, **kw)

    def stop(self, sig=signal.SIGTERM):
        """Stops the server with `sig`; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.proc.stdout.close()
            self.proc.stderr.close()


@pytest.fixture(scope="module")
def data_dir():
    d = tempfile.mkdtemp(prefix="nexus-serve-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def server(data_dir):
    s = Server(data_dir)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    c = server.client()
    yield c
    c.close()


@pytest.fixture()
def db(client, request):
    """A database of its own per test, dropped afterwards."""
    name = "t_" + request.node.name.replace("[", "_").replace("]", "")[:50]
    yield client[name]
    client.drop_database(name)
