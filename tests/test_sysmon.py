"""SysMon counts the CPU of the run's whole process tree (loader workers included)."""

import subprocess
import sys
import time

from vsr.train.sysmon import SysMon

BURN = "import time\nt = time.time()\nwhile time.time() - t < 3: pass\n"


def test_cpu_load_counts_child_processes():
    mon = SysMon(interval=0.25).start()
    kids = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(2)]
    time.sleep(2.5)
    summary = mon.stop()
    for k in kids:
        k.wait()
    # two busy children on a 2-core machine: well above the trainer's own ~0% (one core = 100)
    assert summary["cpu_percent_mean"] > 80, summary


def test_a_run_shorter_than_one_interval_still_has_its_cpu_use():
    """stop() samples the tail since the last sample: a 0.6 s busy run under a 5 s interval
    reports its CPU (this thread's busy loop: about one core), not an empty summary."""
    mon = SysMon(interval=5.0).start()
    t = time.time()
    while time.time() - t < 0.6:
        pass
    summary = mon.stop()
    assert summary["samples"] == 1 and 0.5 < summary["seconds"] < 2.0, summary
    assert summary["cpu_percent_mean"] > 50, summary
