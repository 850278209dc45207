"""Tempo map and position parsing against hand-computed times and samples."""

from __future__ import annotations

from fractions import Fraction

import pytest
from pydantic import BaseModel, ValidationError

from stemprint.errors import InputError
from stemprint.model.timebase import (
    PPQ,
    BarsLength,
    BeatsLength,
    LengthField,
    MusicalPosition,
    PositionField,
    SampleLength,
    SamplePosition,
    SecondsLength,
    SecondsPosition,
    TempoChange,
    TempoMap,
    TimeSignature,
    parse_length,
    parse_position,
)

FS = 48000


def tempo_change_map() -> TempoMap:
    """120 bpm 4/4 for 8 bars, then 90 bpm."""
    return TempoMap(sample_rate=FS, tempo_bpm=120.0, changes=[TempoChange(bar=9, tempo_bpm=90.0)])


# -- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12.5, SecondsPosition(seconds=12.5)),
        (3, SecondsPosition(seconds=3.0)),
        ("12.5s", SecondsPosition(seconds=12.5)),
        (" 0.25 s ", SecondsPosition(seconds=0.25)),
        ("48000smp", SamplePosition(samples=48000)),
        ({"samples": 48000}, SamplePosition(samples=48000)),
        ({"seconds": 2}, SecondsPosition(seconds=2.0)),
        ("17.1.0", MusicalPosition(bar=17, beat=1, tick=0)),
        ("17.1", MusicalPosition(bar=17, beat=1, tick=0)),
        ("3.4.959", MusicalPosition(bar=3, beat=4, tick=959)),
        ({"bar": 5, "beat": 2}, MusicalPosition(bar=5, beat=2, tick=0)),
    ],
)
def test_parse_position_forms(value: object, expected: object) -> None:
    assert parse_position(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2.5, SecondsLength(seconds=2.5)),
        ("2.5s", SecondsLength(seconds=2.5)),
        ("480smp", SampleLength(samples=480)),
        ({"samples": 480}, SampleLength(samples=480)),
        ("2 bars", BarsLength(bars=2.0)),
        ("1 bar", BarsLength(bars=1.0)),
        ({"bars": 0.5}, BarsLength(bars=0.5)),
        ("3 beats", BeatsLength(beats=3.0)),
        ("1.5 beat", BeatsLength(beats=1.5)),
    ],
)
def test_parse_length_forms(value: object, expected: object) -> None:
    assert parse_length(value) == expected


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("abc", "cannot read 'abc' as a position"),
        ("17", "ambiguous"),
        (-1.0, "at least 0"),
        (float("nan"), "finite"),
        ("12.5smp", "cannot read"),
        ({"samples": -3}, "greater than or equal to 0"),
        ({"samples": 1, "seconds": 2}, "cannot read"),
        ("0.1", "bar"),
        (True, "cannot read"),
        (None, "cannot read"),
    ],
)
def test_parse_position_errors(value: object, needle: str) -> None:
    with pytest.raises(InputError) as info:
        parse_position(value, field="tracks[0].clips[0].start")
    error = info.value
    assert needle in error.message
    assert error.field == "tracks[0].clips[0].start"
    assert error.fix is not None and "48000smp" in error.fix and "17.1.0" in error.fix


@pytest.mark.parametrize("value", ["2 barz", "-1 beats", "x", {"bars": -1}, {"ticks": 3}])
def test_parse_length_errors(value: object) -> None:
    with pytest.raises(InputError) as info:
        parse_length(value, field="length")
    assert info.value.fix is not None and "2 bars" in info.value.fix


def test_pydantic_field_types() -> None:
    class Region(BaseModel):
        start: PositionField
        length: LengthField

    region = Region(start="3.2", length="2 bars")
    assert region.start == MusicalPosition(bar=3, beat=2)
    assert region.length == BarsLength(bars=2.0)
    # Dumped values parse back to the same region.
    assert Region.model_validate(region.model_dump()) == region
    with pytest.raises(ValidationError, match="as a position"):
        Region(start="x", length=1)


# -- tempo map --------------------------------------------------------------------------------


def test_bar_under_tempo_change_lands_on_exact_sample() -> None:
    tempo = tempo_change_map()
    expected_seconds = 8 * 4 * 0.5 + 1 * 4 * (60 / 90)  # 16 s + 8/3 s
    assert tempo.seconds("10.1.0") == pytest.approx(expected_seconds, abs=1e-12)
    assert tempo.exact_seconds("10.1.0") == Fraction(16) + Fraction(8, 3)
    assert tempo.sample("10.1.0") == 896000  # (16 + 8/3) * 48000
    assert tempo.sample("9.1") == 16 * FS
    assert tempo.sample("9.2") == 16 * FS + 32000  # one beat at 90 bpm = 2/3 s
    assert tempo.sample("1.1.0") == 0
    assert tempo.sample("1.3") == FS  # two beats at 120 bpm
    assert tempo.tempo_bpm_at("8.4") == 120.0
    assert tempo.tempo_bpm_at("9.1") == 90.0


def test_ticks() -> None:
    tempo = tempo_change_map()
    # 480 ticks = half a quarter note = 0.25 s at 120 bpm.
    assert tempo.sample("1.1.480") == FS // 4
    assert tempo.sample("1.2.1") == FS // 2 + 25  # one tick = 0.5 s / 960 = 25 samples
    # 90 bpm: one tick = (2/3 s) / 960 = 1/1440 s = 33.33 samples.
    assert tempo.sample("9.1.3") == 16 * FS + 100
    assert tempo.exact_seconds("9.1.1") == 16 + Fraction(1, 1440)
    assert tempo.sample("9.1.1") == 16 * FS + 33


def test_time_signature_changes() -> None:
    # Two bars of 4/4 at 120, then 7/8 for three bars, then 3/4 at 60 bpm.
    tempo = TempoMap(
        sample_rate=FS,
        tempo_bpm=120,
        time_signature="4/4",
        changes=[
            {"bar": 3, "time_signature": "7/8"},
            {"bar": 6, "time_signature": {"numerator": 3, "denominator": 4}, "tempo_bpm": 60},
        ],
    )
    # A 7/8 beat is an eighth note: 0.25 s at 120 quarter notes per minute; a bar is 1.75 s.
    assert tempo.exact_seconds("3.1") == 4
    assert tempo.exact_seconds("3.7") == 4 + Fraction(6, 4)
    assert tempo.exact_seconds("4.1") == 4 + Fraction(7, 4)
    assert tempo.exact_seconds("6.1") == 4 + 3 * Fraction(7, 4)
    assert tempo.exact_seconds("7.1") == 4 + 3 * Fraction(7, 4) + 3
    assert tempo.sample("6.2") == round((9.25 + 1.0) * FS)
    # An eighth-note beat has 480 ticks.
    assert tempo.time_signature_at(4).ticks_per_beat == 480
    assert tempo.sample("3.1.240") == 4 * FS + FS // 8
    assert str(tempo.time_signature_at(3)) == "7/8"
    assert str(tempo.time_signature_at(100)) == "3/4"
    assert tempo.tempo_bpm_at("5.7") == 120.0


def test_beats_and_bars_lengths_follow_changes() -> None:
    tempo = tempo_change_map()
    # From bar 8 beat 3: two beats at 120 (1 s) then two at 90 (4/3 s).
    assert tempo.beats_to_seconds("8.3", 4) == pytest.approx(1 + 4 / 3, abs=1e-12)
    assert tempo.bars_to_seconds("1.1", 9) == pytest.approx(16 + 8 / 3, abs=1e-12)
    assert tempo.bars_to_seconds("8.3", 1) == pytest.approx(1 + 4 / 3, abs=1e-12)
    assert tempo.beats_to_seconds(0.25, 0.5) == 0.25
    assert tempo.length_samples("1.1", "2 bars") == 4 * FS
    assert tempo.length_samples("9.1", "3 beats") == 2 * FS
    assert tempo.length_samples(0.1, "3smp") == 3
    assert tempo.length_seconds("1.1", {"beats": 1.5}) == 0.75
    assert tempo.length_seconds(2.0, 0.5) == 0.5

    signatures = TempoMap(
        sample_rate=FS, tempo_bpm=120, changes=[TempoChange(bar=2, time_signature="7/8")]
    )
    # From beat 4 of a 4/4 bar, 3 beats: one quarter (0.5 s), then two eighths (0.5 s).
    assert signatures.beats_to_seconds("1.4", 3) == 1.0
    # Bars count as a continuous coordinate: from the middle of bar 1, half a bar ends at the
    # start of the 7/8 bar, one bar half-way into it.
    assert signatures.bars_to_seconds("1.3", 0.5) == 1.0
    assert signatures.bars_to_seconds("1.3", 1.0) == 1.0 + 0.875


def test_sample_rounds_half_to_even() -> None:
    tempo = TempoMap(sample_rate=2, tempo_bpm=120)
    assert tempo.sample(0.25) == 0  # 0.5 samples
    assert tempo.sample(0.75) == 2  # 1.5 samples
    assert tempo.sample(1.25) == 2  # 2.5 samples
    assert tempo.sample("7smp") == 7
    assert tempo.sample(SamplePosition(samples=9)) == 9
    # Exact rational arithmetic: 0.1 s at 48 kHz is 4800 samples despite binary floats.
    assert TempoMap(sample_rate=FS, tempo_bpm=120).sample(0.1) == 4800


def test_non_integer_tempo_is_exact() -> None:
    tempo = TempoMap(sample_rate=44100, tempo_bpm=128.5)
    beats = 4 * 15  # bar 16
    exact = Fraction(beats) * 60 / Fraction(128.5)
    assert tempo.exact_seconds("16.1") == exact
    assert tempo.sample("16.1") == round(exact * 44100)


def test_beat_and_tick_must_exist_in_the_bar() -> None:
    tempo = TempoMap(sample_rate=FS, tempo_bpm=120, time_signature="7/8")
    assert tempo.sample("1.7.479") > 0
    with pytest.raises(InputError, match=r"beat 8.*7/8.*1\.\.7"):
        tempo.seconds("1.8")
    with pytest.raises(InputError, match=r"tick 480.*0\.\.479"):
        tempo.seconds("2.1.480")
    four = TempoMap(sample_rate=FS, tempo_bpm=120)
    with pytest.raises(InputError, match=r"ticks 0\.\.959"):
        four.sample(f"1.1.{PPQ}")


def test_map_validation() -> None:
    with pytest.raises(ValidationError, match="denominator"):
        TempoMap(sample_rate=FS, tempo_bpm=120, time_signature="7/9")
    with pytest.raises(ValidationError, match="'4/4' or '7/8'"):
        TempoMap(sample_rate=FS, tempo_bpm=120, time_signature="four")
    with pytest.raises(ValidationError, match="tempo_bpm"):
        TempoMap(sample_rate=FS, tempo_bpm=0)
    with pytest.raises(ValidationError, match="tempo_bpm"):
        TempoMap(sample_rate=FS, tempo_bpm=float("inf"))
    with pytest.raises(ValidationError, match="bar order"):
        TempoMap(
            sample_rate=FS,
            tempo_bpm=120,
            changes=[TempoChange(bar=5, tempo_bpm=100), TempoChange(bar=5, tempo_bpm=90)],
        )
    with pytest.raises(ValidationError, match="needs tempo_bpm"):
        TempoChange(bar=3)
    with pytest.raises(ValidationError):
        TempoChange(bar=1, tempo_bpm=100)
    with pytest.raises(ValidationError):
        TempoMap(sample_rate=FS, tempo_bpm=120, swing=0.5)  # type: ignore[call-arg]
    with pytest.raises(InputError, match="length_beats"):
        tempo_change_map().beats_to_seconds(0, -1)
    assert TimeSignature.model_validate("6/8").ticks_per_beat == 480
