"""The ``rdlviz`` command: clear errors with exit status 2, and the describe command."""

from __future__ import annotations

import pytest

from rdlviz.cli import build_parser, main


def test_unknown_database_is_one_clear_error(capsys):
    assert main(["data", "describe", "no-such-database"]) == 2
    err = capsys.readouterr().err
    assert "rdlviz: error:" in err and "rel-lahman" in err and "from_tables" in err


def test_missing_f1_source(capsys, tmp_path):
    assert main(["data", "describe", "rel-f1", "--source", str(tmp_path / "missing")]) == 2
    assert "RDLVIZ_F1_SOURCE" in capsys.readouterr().err


@pytest.mark.parametrize("command", [
    ["embed", "rel-lahman", "--table", "people", "--out", "x.parquet"],
    ["report", "rel-lahman"],
    ["finetune", "rel-lahman", "player-allstar"],
])
def test_bad_checkpoint_fails_before_any_work(capsys, tmp_path, command):
    assert main(command + ["--checkpoint", str(tmp_path)]) == 2
    assert "not an rdlviz checkpoint" in capsys.readouterr().err


def test_describe_prints_every_table_and_the_tasks(capsys, lahman):
    assert main(["data", "describe", "rel-lahman"]) == 0
    out = capsys.readouterr().out
    for table in ("people", "batting", "teams"):
        assert table in out
    assert "player-allstar" in out


def test_every_command_has_help():
    parser = build_parser()
    for cmd in (["demo"], ["data", "describe"], ["pretrain"], ["finetune"], ["embed"], ["report"]):
        with pytest.raises(SystemExit) as e:
            parser.parse_args(cmd + ["--help"])
        assert e.value.code == 0


def test_finetune_passes_min_steps_per_epoch_on(capsys):
    # The link task refuses the option, which shows it reached rdlviz.finetune.
    command = ["finetune", "rel-lahman", "player-team", "--mode", "scratch", "--text", "hash",
               "--min-steps-per-epoch", "20"]
    assert main(command) == 2
    assert "min_steps_per_epoch is for entity tasks" in capsys.readouterr().err
