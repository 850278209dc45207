"""Property: for every routing (nested buses, sends pre and post, returns split or separate,
default or custom stems, mutes), the stems the plan says sum to the premaster do, exactly."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stemprint.errors import SessionError
from stemprint.graph.compile import compile_session
from stemprint.graph.outputs import plan_outputs, resolve_delivery
from stemprint.model.load import load_session
from stemprint.model.session import Delivery
from stemprint.render.engine import Renderer
from tests.conftest import ArraySink, write_session, write_wav

N = 200


@st.composite
def sessions(draw: st.DrawFn) -> dict:
    buses = draw(st.integers(0, 4))
    tracks = draw(st.integers(1, 5))
    bus_names = [f"B{i}" for i in range(buses)]
    bus_list = []
    for i, name in enumerate(bus_names):
        later = bus_names[i + 1 :]
        bus = {"name": name, "output": draw(st.sampled_from(["master", *later]))}
        bus["gain_db"] = draw(st.sampled_from([0.0, -3.0, 2.5]))
        bus["pan"] = draw(st.sampled_from([0.0, 0.4, -0.7]))
        sends = draw(st.lists(st.sampled_from(later), max_size=2, unique=True)) if later else []
        bus["sends"] = [{"to": s, "level_db": -6.0} for s in sends if s != bus["output"]]
        bus_list.append(bus)
    track_list = []
    for i in range(tracks):
        track = {
            "name": f"T{i}",
            "clips": [{"file": f"t{i}.wav"}],
            "output": draw(st.sampled_from(["master", *bus_names])),
            "gain_db": draw(st.sampled_from([0.0, -4.0, 1.5])),
            "pan": draw(st.sampled_from([0.0, 0.5, -1.0])),
            "mute": draw(st.booleans()) and i > 0,
        }
        if bus_names:
            targets = draw(st.lists(st.sampled_from(bus_names), max_size=2, unique=True))
            track["sends"] = [
                {"to": t, "level_db": -9.0, "pre_fader": draw(st.booleans())}
                for t in targets
                if t != track["output"]
            ]
        track_list.append(track)
    data = {"tracks": track_list, "buses": bus_list}
    returns = draw(st.sampled_from(["separate", "split"]))
    data["delivery"] = {"returns": returns}
    if draw(st.booleans()):
        groups = draw(st.integers(1, 3))
        members: dict[int, list[str]] = {}
        for track in track_list:
            members.setdefault(draw(st.integers(0, groups - 1)), []).append(track["name"])
        data["stems"] = [
            {"name": f"S{g}", "routes": [f"track:{n}" for n in names]}
            for g, names in members.items()
        ]
    return data


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sessions())
def test_stems_that_promise_to_sum_do(data):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        rng = np.random.default_rng(len(data["tracks"]) * 31 + len(data["buses"]))
        for i in range(len(data["tracks"])):
            channels = 1 + i % 2
            write_wav(root / f"t{i}.wav", 0.3 * rng.uniform(-1, 1, (channels, N)))
        loaded = load_session(write_session(root, data))
        graph = compile_session(loaded)
        delivery = resolve_delivery(Delivery(**data["delivery"]), 0.0)
        try:
            plan = plan_outputs(loaded, graph, delivery, "always")
        except SessionError as exc:
            # The one routing separate returns cannot print: said, never a wrong stem.
            assert "would be in no stem" in exc.message
            return
        renderer = Renderer(graph, 64, threads=1, outputs=plan.outputs)
        sinks = {t.key: ArraySink() for t in renderer.taps}
        renderer.run(sinks)  # type: ignore[arg-type]
    (relation,) = plan.sums
    assert relation.reference == "premaster" and relation.exact
    total = sum(sinks[k].data for k in relation.parts)
    np.testing.assert_allclose(total, sinks["premaster"].data, rtol=0, atol=1e-12)
    roles = {t.key: t.role for t in renderer.taps}
    assert all(roles[k] == "stem" for k in relation.parts)
    # The stems hold every audible track once: nothing is printed twice or left out.
    audible = graph.audible_tracks
    stems = [t for t in renderer.taps if t.key in relation.parts]
    if data["delivery"]["returns"] == "split" or not any(
        graph.routing.is_return(e.source) for e in graph.master.inputs
    ):
        owned = [t.spec.tracks for t in stems if t.spec.tracks is not None]
        assert set().union(*owned) == set(audible) if owned else not audible


def test_a_return_nested_in_a_group_is_refused_with_separate_returns(tmp_path):
    rng = np.random.default_rng(2)
    for i in range(2):
        write_wav(tmp_path / f"t{i}.wav", 0.3 * rng.uniform(-1, 1, (1, N)))
    data = {
        "tracks": [
            {
                "name": "Vox",
                "clips": [{"file": "t0.wav"}],
                "sends": [{"to": "Room", "level_db": -6}],
            },
            {"name": "Kick", "clips": [{"file": "t1.wav"}], "output": "Drums"},
        ],
        "buses": [{"name": "Room", "output": "Drums"}, {"name": "Drums"}],
        "stems": [{"name": "V", "routes": ["Vox"]}, {"name": "D", "routes": ["Kick"]}],
    }
    loaded = load_session(write_session(tmp_path, data))
    graph = compile_session(loaded)
    separate = resolve_delivery(Delivery(returns="separate"), 0.0)
    with pytest.raises(SessionError, match="carries sends from Vox"):
        plan_outputs(loaded, graph, separate, "always")
    split = plan_outputs(loaded, graph, resolve_delivery(Delivery(returns="split"), 0.0))
    assert split.sums[0].exact
