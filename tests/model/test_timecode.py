"""SMPTE timecode: every frame rate, drop frame (SMPTE 12M), samples since midnight, errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from stemprint.cli.main import app
from stemprint.errors import SessionError
from stemprint.model.load import load_session
from stemprint.model.timecode import (
    FRAME_RATES,
    parse_timecode,
    samples_to_timecode,
    time_reference_samples,
)
from tests.conftest import write_session, write_wav

runner = CliRunner()


def test_one_hour_at_23_976_is_172_972_800_samples_not_3600_seconds():
    timecode = parse_timecode("01:00:00:00", "23.976")
    assert timecode.frame_count == 86_400
    assert timecode.samples_since_midnight(48_000) == 172_972_800  # 86 400 × 2002
    assert 3600 * 48_000 == 172_800_000  # what a clock-time conversion would wrongly give


@pytest.mark.parametrize(
    ("rate", "label", "frames", "samples_48k"),
    [
        ("24", "01:00:00:00", 86_400, 172_800_000),
        ("25", "01:00:00:00", 90_000, 172_800_000),
        ("30", "01:00:00:00", 108_000, 172_800_000),
        ("29.97", "01:00:00:00", 108_000, 172_972_800),  # NDF: 108 000 × 1601.6
        ("29.97", "01:00:00;00", 107_892, 172_799_827),  # DF: 172 799 827.2, nearest sample
        ("29.97df", "01:00:00:00", 107_892, 172_799_827),  # the rate alone makes it DF
        ("29.97", "01:00:00.00", 107_892, 172_799_827),  # "." marks DF too
        ("23.976", "00:00:00:01", 1, 2002),
        ("25", "10:00:00:00", 900_000, 1_728_000_000),
        ("24", "23:59:59:23", 86_400 * 24 - 1, (86_400 * 24 - 1) * 2000),
    ],
)
def test_every_rate_counts_frames_and_samples(rate, label, frames, samples_48k):
    timecode = parse_timecode(label, rate)
    assert timecode.frame_count == frames
    assert timecode.samples_since_midnight(48_000) == samples_48k


@pytest.mark.parametrize(
    ("label", "frames"),
    [
        ("00:00:59;29", 1_799),
        ("00:01:00;02", 1_800),  # 00:01:00;00 and ;01 do not exist
        ("00:02:00;02", 3_598),
        ("00:09:59;29", 17_981),
        ("00:10:00;00", 17_982),  # minute 10 keeps its frames 00 and 01
        ("00:10:00;01", 17_983),
        ("00:11:00;02", 17_982 + 1_800),
        ("23:59:59;29", 2_589_407),  # a DF day is 2 589 408 frames
    ],
)
def test_drop_frame_counting_smpte_12m(label, frames):
    timecode = parse_timecode(label, "29.97")
    assert timecode.frame_count == frames
    samples = timecode.samples_since_midnight(48_000)
    assert samples_to_timecode(samples, 48_000, "29.97df") == label


def test_samples_to_timecode_names_the_frame_holding_the_sample():
    assert samples_to_timecode(172_972_800, 48_000, "23.976") == "01:00:00:00"
    assert samples_to_timecode(172_972_799, 48_000, "23.976") == "00:59:59:23"
    assert samples_to_timecode(0, 48_000, "25") == "00:00:00:00"
    assert samples_to_timecode(1_919, 48_000, "25") == "00:00:00:00"
    assert samples_to_timecode(1_920, 48_000, "25") == "00:00:00:01"
    assert samples_to_timecode(86_400 * 48_000, 48_000, "30") == "00:00:00:00"  # wraps at 24 h
    with pytest.raises(SessionError, match="29.97"):
        samples_to_timecode(0, 48_000, "25", drop_frame=True)


@settings(max_examples=300, deadline=None)
@given(
    rate=st.sampled_from(sorted(FRAME_RATES)),
    sample_rate=st.sampled_from([44_100, 48_000, 96_000]),
    fraction_of_day=st.floats(0.0, 1.0, exclude_max=True),
)
def test_timecode_round_trips_through_samples(rate, sample_rate, fraction_of_day):
    day_frames = parse_timecode("23:59:59;29" if rate == "29.97df" else "00:00:00:00", rate)
    nominal = FRAME_RATES[rate].nominal_fps
    total = day_frames.frame_count + 1 if rate == "29.97df" else 86_400 * nominal
    count = int(fraction_of_day * total)
    label = samples_to_timecode(_samples_of_frame(count, rate, sample_rate), sample_rate, rate)
    back = parse_timecode(label, rate)
    assert back.frame_count == count
    assert samples_to_timecode(back.samples_since_midnight(sample_rate), sample_rate, rate) == label


def _samples_of_frame(count: int, rate: str, sample_rate: int) -> int:
    fps = FRAME_RATES[rate].fps
    exact = count * sample_rate / fps
    return (2 * exact.numerator + exact.denominator) // (2 * exact.denominator)


@pytest.mark.parametrize(
    ("label", "rate", "words"),
    [
        ("00:01:00;00", "29.97", "does not exist in drop frame"),
        ("00:01:00;01", "29.97df", "does not exist in drop frame"),
        ("00:01:00:01", "29.97df", "does not exist in drop frame"),
        ("01:00:00;00", "25", "only at 29.97"),
        ("01:00:00;00", "23.976", "only at 29.97"),
        ("01:00:00;00", "30", "only at 29.97"),
        ("00:00:00:24", "24", "00-23"),
        ("00:00:00:24", "23.976", "00-23"),
        ("00:00:00:25", "25", "00-24"),
        ("00:00:00:30", "29.97", "00-29"),
        ("24:00:00:00", "25", "time of day"),
        ("00:60:00:00", "25", "time of day"),
        ("00:00:60:00", "25", "time of day"),
        ("1:00:00:00", "25", "HH:MM:SS:FF"),
        ("01:00:00", "25", "HH:MM:SS:FF"),
        ("01-00-00-00", "25", "HH:MM:SS:FF"),
    ],
)
def test_invalid_timecodes_name_the_field_and_a_fix(label, rate, words):
    with pytest.raises(SessionError) as info:
        parse_timecode(label, rate)
    assert info.value.field == "start_timecode" and info.value.fix
    assert words in info.value.message


def test_valid_edge_labels():
    assert parse_timecode("00:10:00;00", "29.97").drop_frame
    assert parse_timecode("00:01:01;00", "29.97").frame_count == 1_800 + 28
    assert not parse_timecode("00:01:00:00", "29.97").drop_frame
    assert parse_timecode("00:00:00:24", "25").frames == 24
    assert str(parse_timecode("01:00:00.00", "29.97")) == "01:00:00;00"


def test_unknown_frame_rate():
    with pytest.raises(SessionError) as info:
        parse_timecode("01:00:00:00", "23.98")
    assert info.value.field == "frame_rate"


def _session(tmp_path, **fields):
    write_wav(tmp_path / "a.wav", 0.1 * np.ones((1, 4800)))
    return write_session(
        tmp_path, {"name": "TC", "tracks": [{"name": "A", "clips": [{"file": "a.wav"}]}], **fields}
    )


def test_time_reference_of_a_session(tmp_path):
    session = load_session(_session(tmp_path, start_timecode="01:00:00:00", frame_rate=23.976))
    assert time_reference_samples(session.session) == 172_972_800
    assert time_reference_samples(session.session, 96_000) == 345_945_600
    plain = tmp_path / "plain"
    plain.mkdir()
    assert time_reference_samples(load_session(_session(plain)).session) is None


def test_timecode_without_frame_rate_is_an_error(tmp_path):
    session = load_session(_session(tmp_path, start_timecode="01:00:00:00"))
    with pytest.raises(SessionError) as info:
        time_reference_samples(session.session, file="s.yaml")
    assert info.value.field == "start_timecode" and info.value.file == "s.yaml"
    assert "frame_rate" in (info.value.fix or "")


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"start_timecode": "01:00:00:00"}, "needs a frame rate"),
        ({"start_timecode": "00:01:00;00", "frame_rate": "29.97"}, "drop frame"),
        ({"start_timecode": "01:00:00:25", "frame_rate": 25}, "00-24"),
    ],
)
def test_render_refuses_a_bad_timecode_exit_2(tmp_path, fields, words):
    session = _session(tmp_path, **fields)
    result = runner.invoke(app, ["render", str(session), "-o", str(tmp_path / "out"), "-q"])
    assert result.exit_code == 2, result.output
    assert "start_timecode" in result.output and words in result.output
    assert not (tmp_path / "out").exists()


def test_validate_refuses_a_bad_timecode_exit_2(tmp_path):
    session = _session(tmp_path, start_timecode="00:01:00;00", frame_rate="29.97")
    result = runner.invoke(app, ["validate", str(session)])
    assert result.exit_code == 2, result.output
    assert "start_timecode" in result.output
