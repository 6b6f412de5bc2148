"""One source for each vocabulary (geo.vocabulary): every reader gets the same names, none declares its own."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from geo import vocabulary as V

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("streamer", "scenes", "inference", "mapping", "console", "detectors", "imminence")


def test_vocabulary_is_consistent() -> None:
    assert V.CONCEPTS[0] == "normal" and len(V.CONCEPTS) == len(set(V.CONCEPTS)) == 10
    assert set(V.QUIET_CONCEPTS) <= set(V.CONCEPTS)
    assert tuple(V.CRIME_CONCEPTS) == V.CRIME_TYPES
    assert set(V.CRIME_COLOURS) == {*V.CRIME_TYPES, "all"}
    assert all(V.CONCEPT_MEANINGS[c] for c in V.CONCEPTS)
    with pytest.raises(V.VocabularyError, match=r"where: concept\(s\) \['sneakin'\]"):
        V.check_concepts(["normal", "sneakin"], "where")


def test_readers_get_the_same_objects() -> None:
    from streamer import schemas

    assert schemas.CONCEPTS is V.CONCEPTS and schemas.CRIME_TYPES is V.CRIME_TYPES


def test_api_serves_the_vocabulary() -> None:
    from console import samples
    from console.app import create_app
    from console.config import WebConfig
    from console.state import ConsoleState

    cfg = TestClient(create_app(WebConfig(), ConsoleState(WebConfig(), samples.small_grid()))).get("/api/config").json()
    assert cfg["crimes"] == [*V.CRIME_TYPES, "all"]
    assert cfg["concepts"] == list(V.CONCEPTS)
    assert cfg["crime_colours"] == dict(V.CRIME_COLOURS)
    assert cfg["concept_meanings"] == dict(V.CONCEPT_MEANINGS)


def test_scene_generator_stages_exactly_the_vocabulary() -> None:
    from scenes.agents import STAGED_CONCEPTS, TEMPLATES

    assert STAGED_CONCEPTS == set(V.CONCEPTS)
    assert {c for crimes, _ in TEMPLATES.values() for c in crimes} == set(V.CRIME_TYPES)


def test_synthetic_data_and_crime_model_config_use_the_vocabulary() -> None:
    from inference.config import CrimeModelsConfig
    from inference.synthetic import SCENARIOS, generate_records

    assert tuple(SCENARIOS) == V.CRIME_TYPES
    recs = generate_records(cells=2, hours=0.2)
    assert {r.concept for r in recs} <= set(V.CONCEPTS) and {c for r in recs for c in r.crimes} <= set(V.CRIME_TYPES)
    cfg = CrimeModelsConfig()  # the default table is the study's, from the vocabulary
    assert {c: s.concepts for c, s in cfg.crimes.items()} == V.crime_concepts()
    override = V.crime_concepts()
    override["robbery"] = {"violent_movement": ["violent_movement"]}
    cfg = CrimeModelsConfig(crimes={c: {"concepts": t} for c, t in override.items()})
    assert cfg.crimes["robbery"].concepts == {"violent_movement": ["violent_movement"]}


def test_bundled_models_carry_the_vocabulary() -> None:
    from inference.crime_models import default_models_dir

    for crime in V.CRIME_TYPES:
        meta = json.loads((default_models_dir() / f"{crime}.json").read_text())["meta"]
        assert meta["crime"] == crime and meta["concepts"] == V.crime_concepts()[crime]
    for name in ("concepts.json", "concepts-held.json", "cooccurrence.json"):
        assert json.loads((ROOT / "detectors" / "models" / name).read_text())["concepts"] == list(V.CONCEPTS)


def test_model_files_of_another_vocabulary_fail_at_load(tmp_path) -> None:
    from detectors.concepts.classifiers import ConceptModel, ConceptModelError
    from inference.anfis import ANFIS
    from inference.crime_models import CrimeModel, CrimeModelError, default_models_dir

    d = json.loads((ROOT / "detectors" / "models" / "concepts.json").read_text())
    d["concepts"] = ["theft" if c == "item_seizure" else c for c in d["concepts"]]
    d["classes"] = ["theft" if c == "item_seizure" else c for c in d["classes"]]
    (tmp_path / "c.json").write_text(json.dumps(d))
    with pytest.raises(ConceptModelError, match=r"c\.json.*\['theft'\] are not in the vocabulary"):
        ConceptModel.load(tmp_path / "c.json")
    m = ANFIS.load(default_models_dir() / "robbery.json")
    m.meta = dict(m.meta, concepts={**m.meta["concepts"], "sneaking": ["creeping"]})
    with pytest.raises(CrimeModelError, match=r"robbery\.json \(input 'sneaking'\).*\['creeping'\]"):
        CrimeModel.from_anfis(m, "robbery.json")


def _python_files():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def _strings(nodes) -> list[str]:
    return [n.value for n in nodes if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_no_module_redeclares_a_vocabulary() -> None:
    """No tuple/list/set of several crime types or concepts, no table keyed by crime type, outside geo.vocabulary."""
    crimes, concepts = set(V.CRIME_TYPES), set(V.CONCEPTS)
    # scripts of the two generators, not vocabularies: the synthetic data's story (precursor/action concepts per
    # crime) and the scene generator's episode kinds; both are checked against geo.vocabulary at import
    allowed = {("inference/synthetic.py", "SCENARIOS"), ("scenes/agents.py", "TEMPLATES")}
    bad = []
    for path in _python_files():
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text())
        owner = {}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for sub in ast.walk(node.value) if node.value is not None else ():
                    owner[id(sub)] = ",".join(t.id for t in targets if isinstance(t, ast.Name))
        for node in ast.walk(tree):
            if (rel, owner.get(id(node))) in allowed:
                continue
            if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
                names = set(_strings(node.elts))
            elif isinstance(node, ast.Dict):
                # tables keyed by crime type are copies; per-concept attribute tables (evidence) are checked at import
                names = set(_strings([k for k in node.keys if k is not None])) - concepts
            else:
                continue
            if len(names & crimes) >= 2 or len(names & concepts) >= 4:
                bad.append(f"{rel}:{node.lineno}: {sorted(names & (crimes | concepts))}")
    assert not bad, "vocabularies re-declared outside geo/vocabulary.py:\n" + "\n".join(bad)


def test_console_page_declares_no_vocabulary() -> None:
    """The page's JavaScript and HTML get crime types, colours and concepts from /api/config."""
    words = re.compile(r"\b(" + "|".join(V.CRIME_TYPES + V.CONCEPTS[1:]) + r")\b")
    bad = [f"{p.name}: {m.group(0)}" for p in sorted((ROOT / "console" / "static").glob("*.*"))
           if p.suffix in (".js", ".html") for m in words.finditer(p.read_text())]
    assert not bad, bad
