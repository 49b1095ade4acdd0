"""Interleaving: a deployment in `interleave` mode answers every request with both recommenders' lists merged by
team draft (each item tagged with the variant that contributed it), logs what was shown and who contributed it, and
its analysis credits clicks on items to their rankers: the per-unit preference and its Student-t interval, recomputed
here from the exposure log and the posted events (scipy)."""

import subprocess
import uuid

import numpy as np
import pytest
import requests
import scipy.stats

from conftest import PLINTH_BIN, eventually, register_recommender

UNITS = 120


@pytest.fixture(scope="module")
def interleaved(server, tmp_path_factory):
    model = register_recommender(server, tmp_path_factory.mktemp("interleave"), "il-recs", ["popularity", "item-knn"])
    name = f"il-{uuid.uuid4().hex[:6]}"
    spec = {"name": name, "mode": "interleave",
            "variants": [{"name": "pop", "model": f"{model}/1"}, {"name": "knn", "model": f"{model}/2"}]}
    r = requests.post(f"{server.url}/api/2.0/plinth/deployments/create", json=spec, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["deployment"]["mode"] == "interleave"
    answers = {}
    session = requests.Session()
    for u in range(UNITS):
        r = session.post(f"{server.url}/v1/deployments/{name}/recommend", json={"user": f"user{u % 60}", "k": 6},
                         headers={"X-Plinth-Unit": f"unit{u}", "X-Request-Id": f"req{u}"}, timeout=30)
        assert r.status_code == 200, r.text
        answers[f"unit{u}"] = r.json()
    return {"name": name, "model": model, "answers": answers}


def test_answers_merge_both_rankers_by_team_draft(server, interleaved):
    for unit, a in interleaved["answers"].items():
        items = a["items"]
        assert a["variant"] == "interleaved" and len(items) == 6
        assert len({i["item"] for i in items}) == 6, "no item twice"
        rankers = [i["ranker"] for i in items]
        assert set(rankers) <= {"pop", "knn"}
        # Team draft: after every pair of picks each ranker has picked as often as the other.
        for n in range(0, 7, 2):
            assert rankers[:n].count("pop") == rankers[:n].count("knn"), rankers
    # The coin is seeded by the request: the same request gets the same list.
    again = requests.post(f"{server.url}/v1/deployments/{interleaved['name']}/recommend",
                          json={"user": "user3", "k": 6}, headers={"X-Plinth-Unit": "unit3", "X-Request-Id": "req3"},
                          timeout=30).json()
    assert again["items"] == interleaved["answers"]["unit3"]["items"]
    # An interleaved deployment needs exactly two variants; an unknown mode is refused.
    bad = {"name": f"il-bad-{uuid.uuid4().hex[:6]}", "mode": "interleave",
           "variants": [{"name": "a", "model": f"{interleaved['model']}/1"}]}
    r = requests.post(f"{server.url}/api/2.0/plinth/deployments/create", json=bad, timeout=30)
    assert r.status_code == 400 and "exactly two variants" in r.json()["message"], r.text
    r = requests.post(f"{server.url}/api/2.0/plinth/deployments/create", json={**bad, "mode": "shuffle"}, timeout=30)
    assert r.status_code == 400 and "mode" in r.json()["message"], r.text


def test_clicks_credit_the_contributing_ranker(server, interleaved):
    name = interleaved["name"]

    def logged():
        found = requests.get(f"{server.url}/api/2.0/plinth/deployments/exposures",
                             params={"name": name, "max_results": 10000}, timeout=60).json()["exposures"]
        return found if len(found) >= UNITS else None

    exposures = eventually(logged, timeout=10, what="the interleaved exposures")
    first = {}
    for e in sorted(exposures, key=lambda e: e["time_ms"]):
        assert e["variant"] == "interleaved" and len(e["rankers"]) == len(e["items"])
        first.setdefault(e["unit"], e)
    for unit, a in interleaved["answers"].items():
        assert first[unit]["items"] == [i["item"] for i in a["items"]]
        assert first[unit]["rankers"] == [i["ranker"] for i in a["items"]]

    # Units click: two thirds the first item knn contributed, the others pop's (and a click on no shown item).
    events, expected = [], []
    for u, (unit, a) in enumerate(interleaved["answers"].items()):
        wanted = "pop" if u % 3 == 0 else "knn"
        item = next(i["item"] for i in a["items"] if i["ranker"] == wanted)
        t = first[unit]["time_ms"] + 1000
        events.append({"unit": unit, "kind": "click", "item": item, "time": t, "deployment": name,
                       "event_id": f"c{u}"})
        if u % 10 == 0:  # a retry of the same click counts once
            events.append(dict(events[-1]))
        if u % 7 == 0:
            events.append({"unit": unit, "kind": "click", "item": "never-shown", "time": t, "deployment": name})
        expected.append(1.0 if wanted == "knn" else -1.0)
    r = requests.post(f"{server.url}/v1/events", json=events, timeout=60)
    assert r.status_code == 200 and r.json()["accepted"] == len(events), r.text

    result = requests.get(f"{server.url}/api/2.0/plinth/deployments/analysis",
                          params={"name": name, "event": "click", "window": "1h"}, timeout=60)
    assert result.status_code == 200, result.text
    il = result.json()["interleaving"]
    assert (il["control"], il["challenger"]) == ("pop", "knn")
    assert il["exposed_units"] == UNITS and il["exposures"] >= UNITS
    s = np.array(expected)
    assert (il["units"], il["control_wins"], il["challenger_wins"], il["ties"]) == (
        len(s), int((s < 0).sum()), int((s > 0).sum()), 0)
    half = scipy.stats.t.ppf(0.975, len(s) - 1) * s.std(ddof=1) / np.sqrt(len(s))
    assert il["mean"] == pytest.approx(s.mean(), abs=1e-9)
    assert il["ci_low"] == pytest.approx(s.mean() - half, rel=1e-6)
    assert il["ci_high"] == pytest.approx(s.mean() + half, rel=1e-6)
    assert il["significant"] is True
    # The control named the other way round flips the preference.
    flipped = requests.get(f"{server.url}/api/2.0/plinth/deployments/analysis",
                           params={"name": name, "event": "click", "window": "1h", "control": "knn"},
                           timeout=60).json()["interleaving"]
    assert flipped["mean"] == pytest.approx(-s.mean(), abs=1e-9)
    # The CLI prints it.
    out = subprocess.run([PLINTH_BIN, "deploy", "analyze", name, "--event", "click", "--window", "1h",
                          "--tracking-uri", server.url], check=True, capture_output=True, text=True, timeout=60).stdout
    assert "interleaving: 'pop' (control) against 'knn'" in out and "preference for the challenger" in out, out
