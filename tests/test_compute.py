"""The compute queue: one job at a time by default, first come first served, across threads and processes."""

import subprocess
import sys
import threading
import time

import pytest

from engine import cli, compute


def _queue(tmp_path, slots=1):
    return compute.Queue(slots, folder=tmp_path, poll_s=0.01)


def test_jobs_run_one_at_a_time_in_the_order_they_asked(tmp_path):
    q = _queue(tmp_path)
    inside, order, most = [], [], [0]
    lock = threading.Lock()

    first_may_go = threading.Event()

    def job(i):
        with q.slot():
            with lock:
                inside.append(i)
                most[0] = max(most[0], len(inside))
                order.append(i)
            if i == 0:  # the first keeps the slot until all have asked: none can finish early and blur the order
                first_may_go.wait(60)
            time.sleep(0.05)
            with lock:
                inside.remove(i)

    threads = []
    for i in range(5):
        threads.append(threading.Thread(target=job, args=(i,)))
        threads[-1].start()
        while q.ahead() < i + 1:  # each asks after the one before: it is in the queue before the next starts
            time.sleep(0.001)
    first_may_go.set()
    for t in threads:
        t.join()
    assert most[0] == 1
    assert order == list(range(5))


def test_k_slots_let_k_jobs_in_at_once(tmp_path):
    q = _queue(tmp_path, slots=2)
    inside, most = [], [0]
    lock = threading.Lock()

    def job():
        with q.slot():
            with lock:
                inside.append(1)
                most[0] = max(most[0], len(inside))
            time.sleep(0.1)
            with lock:
                inside.pop()

    threads = [threading.Thread(target=job) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 2


def test_a_waiting_job_learns_its_place_and_can_leave_the_queue(tmp_path):
    q = _queue(tmp_path)
    release, seen = threading.Event(), []

    def holder():
        with q.slot():
            release.wait(60)  # released below: the bound only ends a broken run

    t = threading.Thread(target=holder)
    t.start()
    while q.ahead() == 0:
        time.sleep(0.005)
    with pytest.raises(compute.Cancelled):
        with q.slot(lambda ahead: seen.append(ahead) or len(seen) < 3):
            pytest.fail("a cancelled job must not run")
    assert seen == [1, 1, 1]
    assert q.ahead() == 1  # the holder only: the cancelled job left no ticket behind
    release.set()
    t.join()
    with q.slot():  # and the queue still works
        pass
    assert q.ahead() == 0


def test_an_exception_in_a_job_gives_its_slot_back(tmp_path):
    q = _queue(tmp_path)
    with pytest.raises(RuntimeError):
        with q.slot():
            raise RuntimeError("boom")
    done = []
    t = threading.Thread(target=lambda: q.slot().__enter__() or done.append(1))
    t.start()
    t.join(60)  # returns at once unless the slot was never given back
    assert done == [1]


def test_a_nested_operation_does_not_wait_for_itself(tmp_path):
    q = _queue(tmp_path)
    with q.slot():
        with q.slot():
            assert q.holding()
        assert q.holding()
    assert not q.holding()


def test_another_process_holding_the_slot_makes_a_job_wait(tmp_path):
    # The holder keeps the lock until the job has said it waits (then its stdin closes): no clock involved,
    # so a loaded machine cannot let the holder finish before the job asks.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys; f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('held', flush=True); sys.stdin.read()",
            str(tmp_path / "slot-0.lock"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    q = _queue(tmp_path)
    waits = []

    def waiting(ahead):
        waits.append(ahead)
        if ahead is None and not holder.stdin.closed:
            holder.stdin.close()

    with q.slot(waiting):
        assert holder.wait(timeout=60) == 0  # the slot came only once the holder had let go
    assert None in waits


def test_the_cli_says_it_waits_when_the_machine_is_busy(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PE_COMPUTE_SLOTS", "1")
    monkeypatch.setattr(compute, "_QUEUE", compute.Queue(1, folder=tmp_path, poll_s=0.01))
    monkeypatch.setattr(cli._waiting, "said", False, raising=False)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys; f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('held', flush=True); sys.stdin.read()",
            str(tmp_path / "slot-0.lock"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    said = cli._waiting

    def waiting(ahead):  # the holder lets go once the command has said it waits: a clock-free handshake
        said(ahead)
        if not holder.stdin.closed:
            holder.stdin.close()

    monkeypatch.setattr(cli, "_waiting", waiting)
    assert cli.main(["attack", "--model", "fmnist-lenet-0", "--image", "fmnist:0", "--attack", "fgsm", "--json"]) == 0
    assert holder.wait(timeout=60) == 0
    assert "waiting for a compute slot" in capsys.readouterr().err
    assert cli.main(["models"]) == 0  # listing never waits
