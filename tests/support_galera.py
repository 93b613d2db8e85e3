"""A private MariaDB Galera cluster on 127.0.0.1 for tests and benchmarks.

Every node is a ``mariadbd`` with its own data directory, socket and ports
(client, group communication, incremental and full state transfer), all on
127.0.0.1, started with Debian's galera-4 provider.  A node that joins copies
the data of a running one by rsync (the ``wsrep_sst_rsync`` script), which
drops privileges to the server's user: so the nodes run as ``mysql`` when the
tests run as root, and their folders are handed to that user.

Faults, as a site meets them: ``kill(n)`` (kill -9), ``freeze(n)`` /
``thaw(n)`` (SIGSTOP / SIGCONT), ``isolate(n)`` / ``rejoin(n)`` (Galera's
``gmcast.isolate``: the node cuts itself off from the others and, without
quorum, answers "WSREP has not yet prepared node for application use").
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import List, Optional

import pymysql
from support_mariadb import PASSWORD, USER, find

PROVIDERS = ("/usr/lib/galera/libgalera_smm.so", "/usr/lib/galera-4/libgalera_smm.so",
             "/usr/lib/libgalera_smm.so")
SERVER_USER = "mysql"


def free_ports(count: int) -> List[int]:
    """Ports the kernel says are free now (held open together, so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def missing() -> Optional[str]:
    """Why a cluster cannot run here, or None."""
    if not find("mariadbd") or not find("mariadb-install-db"):
        return "MariaDB is not installed (Debian package mariadb-server)"
    if not any(os.path.exists(path) for path in PROVIDERS):
        return "the Galera provider is not installed (Debian package galera-4)"
    if not shutil.which("rsync"):
        return "rsync is not installed (Debian package rsync): the state transfer needs it"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"no user {SERVER_USER} for the nodes (Debian package mariadb-server adds it)"
    return None


class Node:
    def __init__(self, cluster: "Cluster", index: int) -> None:
        self.cluster = cluster
        self.index = index
        self.base = os.path.join(cluster.base, f"node{index + 1}")
        self.datadir = os.path.join(self.base, "data")
        self.socket = os.path.join(self.base, "mysqld.sock")
        self.log = os.path.join(self.base, "mysqld.log")
        self.port, self.gcomm, self.ist, self.sst = free_ports(4)
        self.process: Optional[subprocess.Popen] = None
        self.frozen = False

    @property
    def name(self) -> str:
        return f"node{self.index + 1}"

    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def options(self, bootstrap: bool) -> List[str]:
        peers = ",".join(f"127.0.0.1:{node.gcomm}" for node in self.cluster.nodes)
        provider = "; ".join([
            f"gmcast.listen_addr=tcp://127.0.0.1:{self.gcomm}",
            f"ist.recv_addr=127.0.0.1:{self.ist}",
            "gcache.size=32M",
            "evs.suspect_timeout=PT3S", "evs.inactive_timeout=PT6S",  # notice a dead node in
            "evs.install_timeout=PT4S",                               # seconds, as a test needs
        ])
        return [
            "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
            f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.base}/pid",
            "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=48M",
            "--max-connections=500", "--skip-name-resolve", "--log-error=" + self.log,
            "--binlog-format=ROW", "--default-storage-engine=InnoDB",
            "--innodb-autoinc-lock-mode=2", "--innodb-flush-log-at-trx-commit=2",
            "--wsrep-on=ON", f"--wsrep-provider={self.cluster.provider}",
            f"--wsrep-cluster-name={self.cluster.name}",
            f"--wsrep-cluster-address=gcomm://{'' if bootstrap else peers}",
            f"--wsrep-node-name={self.name}", "--wsrep-node-address=127.0.0.1",
            f"--wsrep-node-incoming-address=127.0.0.1:{self.port}",
            f"--wsrep-sst-receive-address=127.0.0.1:{self.sst}", "--wsrep-sst-method=rsync",
            f"--wsrep-provider-options={provider}",
            *(["--user=" + SERVER_USER] if os.geteuid() == 0 else []),
        ]

    def install(self) -> None:
        os.makedirs(self.base, exist_ok=True)
        result = subprocess.run(
            [self.cluster.install_db, "--no-defaults", f"--datadir={self.datadir}",
             "--auth-root-authentication-method=normal", "--skip-test-db",
             *(["--user=" + SERVER_USER] if os.geteuid() == 0 else [])],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=180,
        )
        if result.returncode != 0:
            raise RuntimeError(f"mariadb-install-db for {self.name} failed:\n"
                               f"{result.stdout.decode(errors='replace')[-3000:]}")
        self.cluster.hand_over(self.base)

    def start(self, bootstrap: bool = False, timeout: float = 90.0) -> None:
        if not os.path.isdir(os.path.join(self.datadir, "mysql")):
            self.install()
        self.cluster.hand_over(self.base)
        self.process = subprocess.Popen(
            [self.cluster.mariadbd, *self.options(bootstrap)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self.frozen = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.log}\n{self.tail()}")
            if self.ready():
                return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not join within {timeout:g} s:\n{self.tail()}")

    def connect(self, user: str = "root", password: str = "", timeout: float = 5):
        return pymysql.connect(unix_socket=self.socket, user=user, password=password,
                               connect_timeout=timeout, read_timeout=timeout,
                               write_timeout=timeout, autocommit=True)

    def status(self, name: str) -> Optional[str]:
        try:
            conn = self.connect()
        except pymysql.err.Error:
            return None
        try:
            with conn.cursor() as cursor:
                cursor.execute("SHOW GLOBAL STATUS LIKE %s", (name,))
                row = cursor.fetchone()
                return None if row is None else str(row[1])
        except pymysql.err.Error:
            return None
        finally:
            conn.close()

    def ready(self) -> bool:
        """A primary-component member that applies and accepts writes."""
        return (self.status("wsrep_ready") == "ON"
                and self.status("wsrep_local_state_comment") == "Synced")

    def cluster_size(self) -> int:
        return int(self.status("wsrep_cluster_size") or 0)

    def kill(self) -> None:
        if self.process is not None:
            if self.frozen:
                self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait()
            self.process = None
            self.frozen = False

    def stop(self) -> None:
        if self.process is None:
            return
        if self.frozen:
            self.process.send_signal(signal.SIGCONT)
            self.frozen = False
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.frozen = False

    def set_provider_option(self, option: str) -> None:
        conn = self.connect()
        try:
            with conn.cursor() as cursor:
                cursor.execute("SET GLOBAL wsrep_provider_options = %s", (option,))
        finally:
            conn.close()

    def isolate(self) -> None:
        """Cut this node off from the group (it keeps running, without quorum)."""
        self.set_provider_option("gmcast.isolate=1")

    def rejoin(self) -> None:
        self.set_provider_option("gmcast.isolate=0")

    def tail(self, lines: int = 40) -> str:
        try:
            with open(self.log, encoding="utf-8", errors="replace") as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError:
            return ""


class Cluster:
    """``Cluster(3).start()``; ``url(name)`` lists every node for smss's [database] url."""

    def __init__(self, size: int = 3, base: Optional[str] = None, name: str = "smss") -> None:
        problem = missing()
        if problem is not None:
            raise RuntimeError(problem)
        self.mariadbd = find("mariadbd")
        self.install_db = find("mariadb-install-db")
        self.provider = next(path for path in PROVIDERS if os.path.exists(path))
        self.base = base or tempfile.mkdtemp(prefix="smss-galera-")
        os.chmod(self.base, 0o755)  # the nodes' user must reach its folders
        self.name = name
        self.nodes = [Node(self, index) for index in range(size)]
        self._databases = 0

    def hand_over(self, path: str) -> None:
        if os.geteuid() != 0:
            return
        entry = pwd.getpwnam(SERVER_USER)
        for folder, _dirs, files in os.walk(path):
            os.chown(folder, entry.pw_uid, entry.pw_gid)
            for name in files:
                os.chown(os.path.join(folder, name), entry.pw_uid, entry.pw_gid,
                         follow_symlinks=False)

    def start(self) -> "Cluster":
        first, *others = self.nodes
        first.start(bootstrap=True)
        conn = first.connect()
        with conn.cursor() as cursor:  # replicated to the nodes that join
            for host in ("localhost", "127.0.0.1"):
                cursor.execute(f"CREATE USER IF NOT EXISTS '{USER}'@'{host}'"
                               f" IDENTIFIED BY '{PASSWORD}'")
                cursor.execute(f"GRANT ALL ON *.* TO '{USER}'@'{host}'")
        conn.close()
        for node in others:
            node.start()
        return self

    def heal(self, timeout: float = 120.0) -> None:
        """Every node running, thawed, joined and synced again (after a test's fault)."""
        for node in self.nodes:
            if node.frozen:
                node.thaw()
        running = [node for node in self.nodes
                   if node.process is not None and node.process.poll() is None]
        for node in running:
            try:
                node.rejoin()
            except pymysql.err.Error:
                pass
        if running and not any(node.ready() for node in running):
            time.sleep(2)  # a rejoined node may need a moment to see the others
        if running and not any(node.ready() for node in running):
            # no primary component left (quorum lost): make one of the survivors primary
            # again, as an operator does with pc.bootstrap
            running[0].set_provider_option("pc.bootstrap=YES")
            self.wait(running[0].ready, timeout, f"{running[0].name} bootstraps")
        for node in self.nodes:
            if node.process is None or node.process.poll() is not None:
                node.process = None
                node.start()
            elif not node.ready():
                try:
                    node.rejoin()
                except pymysql.err.Error:
                    pass
        deadline = time.monotonic() + timeout
        while not all(node.ready() and node.cluster_size() == len(self.nodes)
                      for node in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not heal:\n"
                                   + "\n".join(node.tail(10) for node in self.nodes))
            time.sleep(0.3)

    def wait(self, condition, timeout: float = 60.0, what: str = "the cluster") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: condition not reached within {timeout:g} s")
            time.sleep(0.2)

    def create_database(self, name: Optional[str] = None) -> str:
        """A new empty database (made on the first running node, replicated); its URL."""
        self._databases += 1
        name = name or f"smss_galera_{os.getpid()}_{self._databases}"
        node = next(node for node in self.nodes if node.process is not None and not node.frozen)
        conn = node.connect()
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        conn.close()
        return self.url(name)

    def url(self, name: str, nodes: Optional[List[Node]] = None) -> str:
        """``mysql://…@127.0.0.1:P1,127.0.0.1:P2,…/name``: the nodes in the order given."""
        hosts = ",".join(node.address() for node in (nodes or self.nodes))
        return f"mysql://{USER}:{PASSWORD}@{hosts}/{name}"

    def node_url(self, node: Node, name: str) -> str:
        return f"mysql://{USER}:{PASSWORD}@{node.address()}/{name}"

    def cleanup(self) -> None:
        for node in self.nodes:
            node.kill() if node.frozen else node.stop()
        shutil.rmtree(self.base, ignore_errors=True)
