"""Every seeded fault of the catalogue is reported by a user-facing command (``derive``,
``verify`` or ``flow``), and the unpatched commands succeed.

The whole catalogue takes minutes (one subprocess per fault): it is marked slow; a fast
representative subset (one fault per command family) runs by default.
"""

from __future__ import annotations

import pytest

from .catalogue import COMMANDS, FAULTS, PACKAGE, apply, reports_failure, run_command, run_fault

FAST = ("weight_decay_factor", "flow_field_speed", "effective_penalty_lift_exponent")


def test_catalogue_is_large_and_anchored():
    assert len(FAULTS) >= 30 and len({f.id for f in FAULTS}) == len(FAULTS)
    assert set(FAST) <= {f.id for f in FAULTS}
    assert {f.command for f in FAULTS} == set(COMMANDS)  # every command is used
    for fault in FAULTS:
        assert fault.command in COMMANDS
        text = (PACKAGE / fault.path).read_text()
        assert text.count(fault.old) == 1, fault.id  # the catalogue cannot silently rot
        assert fault.old != fault.new


def test_apply_refuses_a_missing_snippet(tmp_path):
    fault = FAULTS[0]
    (tmp_path / "dgating").mkdir()
    (tmp_path / "dgating" / fault.path).write_text("nothing here\n")
    with pytest.raises(AssertionError, match="occurs 0 times"):
        apply(fault, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_unpatched_command_succeeds(command):
    proc = run_command(COMMANDS[command])
    assert not reports_failure(command, proc), proc.stderr[-2000:]


def _check(fault):
    detected, proc = run_fault(fault)
    assert detected, f"{fault.id} ({fault.description}) not reported by {fault.command}"


@pytest.mark.parametrize("fault", [f for f in FAULTS if f.id in FAST], ids=lambda f: f.id)
def test_fault_is_reported_fast(fault):
    _check(fault)


@pytest.mark.slow
@pytest.mark.parametrize("fault", [f for f in FAULTS if f.id not in FAST], ids=lambda f: f.id)
def test_fault_is_reported(fault):
    _check(fault)
